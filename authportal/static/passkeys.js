// The portal's passkey script (authportal.passkeys).
