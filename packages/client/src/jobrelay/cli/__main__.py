from jobrelay.cli.app import main

main()
