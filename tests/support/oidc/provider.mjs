// A real OpenID Connect provider for Warren's tests: panva's oidc-provider on loopback, with its
// built-in development login (any login name, any password) and consent pages.
//
// node provider.mjs PORT CONFIG_JSON
//   CONFIG_JSON: {"client_id", "client_secret", "redirect_uri",
//                 "accounts": {login: {email, email_verified, groups}}}
// POST /test/forge?mode=signature|garbage|off changes what the token endpoint answers next
// (a broken signature on the ID token, or a body that is not JSON): what an attacker or a
// broken provider would send, from the real provider's own flow.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const config = JSON.parse(process.argv[3]);
const issuer = `http://127.0.0.1:${port}`;
let forge = 'off';

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: [config.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
  },
  conformIdTokenClaims: false, // the scopes' claims in the ID token, as most providers do
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const account = (config.accounts || {})[id] || {};
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          name: id,
          email: account.email ?? `${id}@idp.test`,
          email_verified: account.email_verified ?? true,
          groups: account.groups ?? [],
        };
      },
    };
  },
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/forge' && ctx.method === 'POST') {
    forge = ctx.query.mode || 'off';
    ctx.body = { forge };
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && forge !== 'off') {
    if (forge === 'garbage') {
      ctx.type = 'text/html';
      ctx.body = '<html>upstream error</html>';
    } else if (forge === 'signature' && ctx.body && ctx.body.id_token) {
      const [header, payload, signature] = ctx.body.id_token.split('.');
      const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
      ctx.body = { ...ctx.body, id_token: `${header}.${payload}.${flipped}` };
    }
    forge = 'off';
  }
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
