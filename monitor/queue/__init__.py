"""Reply queue: which mentions need an answer, in what order, and who handled them."""
