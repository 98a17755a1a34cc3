"""``python -m gallery``: run the gallery and print its table."""

from gallery.runner import main

main()
