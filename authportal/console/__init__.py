"""The admin console on the portal, under /admin: what the node is doing (nodes, sites,
resources and their targets, the last refusals, the running policy) and the changes an admin
makes to sign-ins, users and share links, through the same code as the command line.

`mount.mount` adds it to the portal's application: the templates, the pages (`pages`), and the
guard that stands in front of every /admin URL (`access`). What it reads of the node's other
processes is `reading`.
"""
