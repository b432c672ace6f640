from components.serving.server import main

main()
