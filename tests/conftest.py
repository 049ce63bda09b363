# fixtures for every test: the harness's (mitmdump, mock servers) and redis_server
pytest_plugins = ["tests.harness.fixtures", "tests.redis_server"]
