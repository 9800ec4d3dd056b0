"""`warren init`: a node's first files (warren.yaml, policy.yaml, users.yaml, a site's secret)
and the systemd units, rendered from the templates in `templates/` (package data: the wheel
carries them, and they are the units the repository ships)."""
