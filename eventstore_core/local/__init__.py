"""Local services for development and tests: start a backend's server (or a stand-in) here."""
