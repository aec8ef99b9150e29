"""The order API: validates orders and stores them, with their placement guaranteed."""
