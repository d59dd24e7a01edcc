"""Train the BigLearn-GAN on CelebA faces. `python train/train_celeba.py --help`; `--preset paper` is Table 3."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from biglearn.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("celeba", "../shared/data/celeba"))
