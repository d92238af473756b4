import sys

from tfvae.cli import main

sys.exit(main())
