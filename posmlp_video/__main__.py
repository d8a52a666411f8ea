import sys

from posmlp_video.cli import main

sys.exit(main())
