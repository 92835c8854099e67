"""Run under `accelerate launch --num_processes 2` by tests/test_distributed.py: train, then predict.

Both verbs run in the same launched processes (one interpreter start-up per rank instead of two).
"""

from __future__ import annotations

import sys

from sarvlm.cli.main import main

if __name__ == "__main__":
    train_args, predict_args = " ".join(sys.argv[1:]).split(" -- ")
    code = main(train_args.split())
    if code == 0:
        code = main(predict_args.split())
    sys.exit(code)
