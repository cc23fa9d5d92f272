from hazardwatch.cli import main

raise SystemExit(main())
