"""`python -m vision_client ...` is the same as `vision-ai ...`."""

from vision_client.cli import main

raise SystemExit(main())
