/* proxy-relay.c - the entry point of am's egress proxy container (image am-proxy).
 *
 * squid cannot listen on a unix socket, and the agent reaches its proxy only through one
 * (docs/network.md). This program starts squid, then serves squid's loopback port on the
 * socket. With an argument N (the agent's --publish count), it also listens on TCP ports
 * 20000 .. 20000+N-1, which the engine publishes to the host, and joins each connection to the
 * agent's relay socket /run/am-publish/<i>.sock. Everything else is fixed here at compile
 * time: it runs no other program and can connect to nothing but 127.0.0.1:3128 and those
 * sockets, so the image needs no shell, no socat and no other tool that could reach the
 * network (issue 18).
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
#define PUBLISH_DIR "/run/am-publish"
#define PUBLISH_BASE 20000
#define MAX_PUBLISH 256
#define SQUID "/usr/sbin/squid"
#define SQUID_CONF "/etc/am-proxy/squid.conf"

static volatile sig_atomic_t child_exited, stop_signal;
static pid_t squid;

static void on_child(int sig) { (void)sig; child_exited = 1; }
static void on_stop(int sig) { stop_signal = sig; }

static void die(const char *what) {
    fprintf(stderr, "am-proxy-relay: %s: %s\n", what, strerror(errno));
    if (squid > 0)
        kill(squid, SIGKILL);
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

/* A connection to where listener I leads: squid for 0, published socket I-1 for the rest. */
static int connect_target(int i) {
    if (i == 0) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PROXY_PORT),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&to, sizeof to) == 0)
            return fd;
        return -1;
    }
    struct sockaddr_un to = {.sun_family = AF_UNIX};
    snprintf(to.sun_path, sizeof to.sun_path, PUBLISH_DIR "/%d.sock", i - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&to, sizeof to) == 0)
        return fd;
    return -1;
}

/* Copy both ways between the client and the target until both directions are closed. */
static void relay(int client, int target) {
    int up = connect_target(target);
    if (up < 0)
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

static int listen_unix(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, SOCKET_PATH);
    if (fd < 0)
        die("socket");
    unlink(SOCKET_PATH);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 128) < 0)
        die("bind " SOCKET_PATH);
    return fd;
}

static int listen_tcp(int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port),
                               .sin_addr.s_addr = htonl(INADDR_ANY)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 128) < 0)
        die("bind a published port");
    return fd;
}

int main(int argc, char **argv) {
    int published = 0;
    if (argc > 2 || (argc == 2 && (strspn(argv[1], "0123456789") != strlen(argv[1]) ||
                                   (published = atoi(argv[1])) > MAX_PUBLISH))) {
        fprintf(stderr, "usage: am-proxy-relay [PUBLISHED_PORTS] (at most %d)\n", MAX_PUBLISH);
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_child; /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    umask(077); /* the socket: for the proxy's user alone, who is also the agent's */

    struct pollfd ls[1 + MAX_PUBLISH];
    int n = 1 + published;
    ls[0] = (struct pollfd){.fd = listen_unix(), .events = POLLIN};
    for (int i = 0; i < published; i++)
        ls[1 + i] = (struct pollfd){.fd = listen_tcp(PUBLISH_BASE + i), .events = POLLIN};

    squid = fork();
    if (squid < 0)
        die("fork");
    if (squid == 0) {
        for (int i = 0; i < n; i++)
            close(ls[i].fd);
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
        if (poll(ls, n, 1000) <= 0)
            continue; /* a signal, or a second to look at the flags again */
        for (int i = 0; i < n; i++) {
            if (!(ls[i].revents & POLLIN))
                continue;
            int client = accept(ls[i].fd, NULL, NULL);
            if (client < 0)
                continue;
            pid_t pid = fork();
            if (pid == 0) {
                for (int j = 0; j < n; j++)
                    close(ls[j].fd);
                relay(client, i);
            }
            close(client);
        }
    }
}
