"""Local services for tests, benchmarks and development: real servers started without Docker."""
