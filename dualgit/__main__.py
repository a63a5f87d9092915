from dualgit.cli.main import main

raise SystemExit(main())
