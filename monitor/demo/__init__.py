"""Built-in demo sources (a local review website, a loopback Reddit API) that `monitor demo` crawls."""
