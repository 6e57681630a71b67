handle = 42
