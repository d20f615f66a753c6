from bot.doors.cli.main import main

main()
