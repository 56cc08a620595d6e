"""``python -m quickspike.synth``: see :mod:`quickspike.synth.command`."""

import sys

from quickspike.synth.command import main

sys.exit(main())
