"""Small programs the tests run in a subprocess of their own."""
