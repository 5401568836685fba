"""`make bench`: every benchmark, each printing ratios against a baseline measured in the same run."""

import importlib
import sys

SUITES = ["core", "preprocess", "train", "restore"]


def main() -> int:
    only = sys.argv[1:] or SUITES
    failed = []
    for name in only:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"bench.{name}":
                print(f"== {name}: not built yet")
                continue
            raise
        print(f"== {name}", flush=True)
        if not mod.main():
            failed.append(name)
    if failed:
        print(f"targets missed in: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
