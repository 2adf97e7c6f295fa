"""Mean eikonal loss of a run's logged steps in windows, and its training PSNR over steps 750-1000."""

import glob
import json


def window(rows: list[dict], key: str, first: int, last: int) -> float:
    values = [r[key] for r in rows if first <= r["step"] <= last]
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    for path in sorted(glob.glob("/tmp/armcpu/*/train_log.jsonl")):
        with open(path) as f:
            rows = [json.loads(line) for line in f]
        name = path.split("/")[-2]
        windows = [(1, 250), (250, 500), (500, 1000), (1000, 1500), (1500, 2500)]
        eik = " ".join(f"{a}-{b} {window(rows, 'eikonal', a, b):.3f}" for a, b in windows)
        psnr = window(rows, "psnr", 750, 1000)
        print(f"{name:22s} last {rows[-1]['step']:5d}  eik {eik}  psnr750-1000 {psnr:.2f}")


if __name__ == "__main__":
    main()
