"""What generated workers import. Never imports the compiler (``meshc`` outside ``runtime``)."""
