"""The one exception type for user mistakes (bad params, bad data, missing files).

Stages catch it at their entry point and print it as one line; anything else is a bug.
"""

import errno
import sys
from collections.abc import Callable

# a full disk, a quota, or a file-size limit: not a bug, and nothing the stage can fix
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class PipelineError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(), turning a PipelineError into one line on stderr and exit 1."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        # numpy reports a short write without an errno: "N requested and M written"
        short_write = error.errno is None and "requested and" in str(error) and "written" in str(error)
        if error.errno not in DISK_FULL and not short_write:
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(f"error: no space left{where} ({error.strerror}); free disk space and rerun", file=sys.stderr)
        sys.exit(1)
