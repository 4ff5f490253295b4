"""``am send``: type text into a running agent's terminal, as if at the keyboard, then Enter."""

import sys
import unicodedata

from am import session, status
from am.errors import AmError
from am.record import Status

SEND_MAX = 1024 * 1024


def check_text(text: str, label: str) -> str:
    """TEXT if it is text to type: control characters other than tab and newline would act as
    keys (Ctrl-C, Escape sequences, the end of a bracketed paste), so they are refused."""
    for i, c in enumerate(text):
        if c not in "\t\n" and unicodedata.category(c) in ("Cc", "Cs"):
            what = f"U+{ord(c):04X}" if unicodedata.category(c) == "Cc" else "invalid UTF-8"
            raise AmError(
                f"{label} holds a control character ({what} at offset {i})",
                "am send types text; use 'am attach' for keys",
            )
    if len(text.encode("utf-8")) > SEND_MAX:
        raise AmError(f"{label} is more than {SEND_MAX} bytes")
    return text


def read_text(args) -> tuple[str, str]:
    """The text to send and how to name it in errors: TEXT, or --file (a path or '-')."""
    if args.file is None:
        if args.text is None:
            raise AmError("nothing to send", "give TEXT, or --file FILE ('-': standard input)")
        return args.text, "TEXT"
    if args.text is not None:
        raise AmError("give TEXT or --file, not both")
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read(SEND_MAX + 1)
        else:
            with open(args.file, "rb") as f:
                data = f.read(SEND_MAX + 1)
    except OSError as e:
        raise AmError(f"cannot read --file {args.file}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AmError(f"--file {args.file} is not UTF-8 text") from None
    # A file's last newline ends its last line; Enter (unless --no-enter) submits it.
    return text.removesuffix("\n"), f"--file {args.file}"


def run(args) -> int:
    text, label = read_text(args)
    check_text(text, label)
    if not text and args.no_enter:
        raise AmError("nothing to send", "an empty text with --no-enter types nothing")
    view = status.view(args.id)
    if view["status"] != Status.RUNNING:
        raise AmError(
            f"agent {args.id} is not running (status: {view['status']})",
            f"start it again with 'am start {args.id}'"
            if view["status"] in (Status.STOPPED, Status.EXITED)
            else "see 'am list'",
        )
    if status.detached(view):
        from am import keepersock, paths

        # The keeper holds the container's terminal (am/keeper.py) and types it there.
        keepersock.request(
            paths.layout(),
            {"op": "send", "id": view["id"], "text": text, "enter": not args.no_enter},
        )
    else:
        session.paste(view["session"], text, enter=not args.no_enter)
    return 0
