/* proxy-relay.c - the entry point of am's egress proxy container (image am-proxy).
 *
 * squid cannot listen on a unix socket, and the agent reaches its proxy only through one
 * (docs/network.md). This program starts squid, then serves squid's loopback port on the
 * socket. Everything it can do is fixed here at compile time: it takes no arguments, runs no
 * other program and can connect to nothing but 127.0.0.1:3128, so the image needs no shell,
 * no socat and no other tool that could reach the network (issue 18).
 *
 * One process per connection keeps it simple; the container's pids limit bounds them. When
 * squid exits, the relay exits with its status, so the engine sees the proxy stop. Asked to
 * stop, it ends squid at once: the proxy keeps nothing worth a graceful shutdown, and podman's
 * 'rm --force' would otherwise wait for it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SOCKET_PATH "/run/am-proxy/proxy.sock"
#define PROXY_PORT 3128
#define SQUID "/usr/sbin/squid"
#define SQUID_CONF "/etc/am-proxy/squid.conf"

static volatile sig_atomic_t child_exited, stop_signal;
static pid_t squid;

static void on_child(int sig) { (void)sig; child_exited = 1; }
static void on_stop(int sig) { stop_signal = sig; }

static void die(const char *what) {
    fprintf(stderr, "am-proxy-relay: %s: %s\n", what, strerror(errno));
    if (squid > 0)
        kill(squid, SIGTERM);
    exit(1);
}

/* Write all of BUF; 0 on success. */
static int write_all(int fd, const char *buf, ssize_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, (size_t)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= w;
    }
    return 0;
}

/* Copy both ways between the client and squid until both directions are closed. */
static void relay(int client) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PROXY_PORT),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int up = socket(AF_INET, SOCK_STREAM, 0);
    if (up < 0 || connect(up, (struct sockaddr *)&to, sizeof to) < 0)
        _exit(1);
    struct pollfd p[2] = {{.fd = client, .events = POLLIN}, {.fd = up, .events = POLLIN}};
    int peer[2] = {up, client};
    char buf[65536];
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                shutdown(peer[i], SHUT_WR); /* pass the end of this direction on */
                p[i].fd = -1;
            } else if (write_all(peer[i], buf, n) < 0) {
                _exit(0);
            }
        }
    }
    _exit(0);
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_child; /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    umask(077); /* the socket: for the proxy's user alone, who is also the agent's */

    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, SOCKET_PATH);
    if (ls < 0)
        die("socket");
    unlink(SOCKET_PATH);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ls, 128) < 0)
        die("bind " SOCKET_PATH);

    squid = fork();
    if (squid < 0)
        die("fork");
    if (squid == 0) {
        close(ls);
        execl(SQUID, "squid", "-N", "-f", SQUID_CONF, (char *)NULL);
        fprintf(stderr, "am-proxy-relay: cannot run " SQUID ": %s\n", strerror(errno));
        _exit(127);
    }

    for (;;) {
        if (stop_signal) {
            kill(squid, SIGKILL);
            unlink(SOCKET_PATH);
            exit(0);
        }
        if (child_exited) {
            child_exited = 0;
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid == squid) {
                    unlink(SOCKET_PATH);
                    exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                }
            }
        }
        struct pollfd p = {.fd = ls, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0)
            continue; /* a signal, or a second to look at the flags again */
        int client = accept(ls, NULL, NULL);
        if (client < 0)
            continue;
        pid_t pid = fork();
        if (pid == 0) {
            close(ls);
            relay(client);
        }
        close(client);
    }
}
