"""``python -m qeu_vlm COMMAND``: the commands of ``qeu_vlm.tools.cli``; ``learn`` is the research's own."""
import sys

if sys.argv[1:2] == ["learn"]:
    from .research.learn import main
else:
    from .tools.cli import main

sys.exit(main(sys.argv[2:] if sys.argv[1:2] == ["learn"] else None))
