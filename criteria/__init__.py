"""Built-in criterion kinds. Each module is an ordinary plugin, registered like any other."""
