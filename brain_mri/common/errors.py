"""The one exception type for user mistakes (bad params, bad data, missing files).

Stages catch it at their entry point and print it as one line; anything else is a bug.
"""

import errno
import re
import sys
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

# a full disk, a quota, or a file-size limit: not a bug, and nothing the stage can fix
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# a read-only filesystem or a folder the user may not write: the user's to fix
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


class PipelineError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


# a URL of any scheme, up to the first space or quote
URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"]+""")


def shown_location(location: str) -> str:
    """A location as messages and outputs may show it: a URL (any scheme) without user, password, query
    or fragment; a path or a Kaggle slug as it is."""
    try:
        parts = urlsplit(location)
    except ValueError:  # e.g. an unclosed [ in the host: show nothing of it
        return "<a malformed URL>"
    if not (parts.scheme and parts.netloc):
        return location
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def redacted(text: str) -> str:
    """`text` with every URL in it shown as shown_location shows it: no credentials, no query."""
    return URL.sub(lambda match: shown_location(match.group()), text)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(), turning a PipelineError into one line on stderr and exit 1.

    The line never shows a URL's credentials or query, wherever in the message a URL comes from."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {redacted(str(error))}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        # numpy reports a short write without an errno: "N requested and M written"
        short_write = error.errno is None and "requested and" in str(error) and "written" in str(error)
        if error.errno in NOT_WRITABLE:
            where = f" {error.filename}" if error.filename else ""
            message = f"cannot write or read{where} ({error.strerror}); check its permissions (or a read-only mount)"
            print(f"error: {message} and rerun", file=sys.stderr)
            sys.exit(1)
        if error.errno not in DISK_FULL and not short_write:
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(f"error: no space left{where} ({error.strerror}); free disk space and rerun", file=sys.stderr)
        sys.exit(1)
