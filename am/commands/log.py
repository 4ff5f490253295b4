"""``am log``: the agent's commits since the commit it started from.

Read like ``am diff`` (``am.workspace``: a git folder of am's own, in the agent's sandbox for a
container agent): git log's own text, the exact bytes into a pipe and escaped on a terminal
(``am.termsafe``), or with ``--json`` each commit's fields, parsed from the commit objects and
checked.
"""

from am import output, paths, termsafe
from am.commands.diff import reading


def run(args) -> int:
    record, ops = reading(paths.layout(), args.id)
    if args.json:
        output.print_json(ops.commits(record["base_commit"]))
    else:
        termsafe.write_untrusted(ops.log(record["base_commit"], oneline=args.oneline))
    return 0
