"""`python -m paperlab.sweep ...`: see paperlab/sweep/cli.py."""
from paperlab.sweep.cli import run

if __name__ == "__main__":
  run()
