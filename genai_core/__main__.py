"""`python -m genai_core ...`: see genai_core/cli.py."""

from .cli import main

raise SystemExit(main())
