"""`python -m genai_core ...`: see genai_core/cli/."""

from genai_core.cli import main

raise SystemExit(main())
