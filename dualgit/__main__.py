from dualgit.main import main

raise SystemExit(main())
