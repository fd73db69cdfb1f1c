"""The one exception type for user mistakes (bad params, bad data, missing files).

Stages catch it at their entry point and print it as one line; anything else is a bug.
"""

import sys
from collections.abc import Callable


class PipelineError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(), turning a PipelineError into one line on stderr and exit 1."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
