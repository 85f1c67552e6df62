"""`torchrun` for a local job that must not outlive its owner: `python -m vlp.platform.launch.owned_agent ARGS`
takes torchrun's arguments and runs torchrun's own `main` in this process, after arranging (see ownership.py)
that it stops when the process that launched it is gone. The launcher puts it in place of `torchrun`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from vlp.platform.launch.ownership import stop_when_owner_is_gone

    # The agent needs longer than a worker: its SIGTERM first stops the workers, who checkpoint on the way out.
    stop_when_owner_is_gone(term_after=0.0, kill_after=90.0)
    from torch.distributed.run import main as torchrun_main

    torchrun_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
