"""Train the multi-modal MNIST model (paper §4.3, App. E). `python train/train_digits.py --help`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from biglearn.multimodal.trainer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
