import os
import sys
from pathlib import Path

# Never let a test reach a model hub; the shared helpers in tests/ import as plain modules.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
