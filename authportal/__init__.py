"""The sign-in portal: an aiohttp application that signs people in and hands each resource host
a one-time code for its own session cookie (see DESIGN.md, "Sign-in across domains")."""
