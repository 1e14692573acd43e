"""Model trust: signed model directories and the facts they vouch for (issue 7)."""
