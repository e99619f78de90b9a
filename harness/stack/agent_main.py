"""``python -m harness.stack.agent_main``: the lag agent as the process the supervisor runs.

Its own module, so that running it does not re-import `harness.stack.agent`, which the
package (through `harness.stack.local`) has imported already.
"""

from __future__ import annotations

import sys

from harness.stack.agent import main

if __name__ == "__main__":
    sys.exit(main())
