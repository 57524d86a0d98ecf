// Security headers (helmet) on every response, chosen so that the frontend, a page on another
// origin calling the API with CORS and showing avatar previews, keeps working as with Flask.
import helmet from 'helmet';

export function securityHeaders() {
  return helmet({
    // The gateway serves JSON and passed-through bytes, no page of its own; a policy here would only
    // break the signalling service's demo pages served through /api/webrtc/ (inline scripts).
    contentSecurityPolicy: false,
    // Helmet's default (same-origin) would stop the frontend's origin from loading previews.
    crossOriginResourcePolicy: { policy: 'cross-origin' },
    // The gateway speaks plain HTTP on its port; HSTS belongs to the TLS proxy in front of it, and
    // helmet's includeSubDomains would force HTTPS onto every other service of the domain.
    strictTransportSecurity: false,
    // The only pages the gateway serves are the signalling service's demo pages, which frontends
    // built on LiveTalking embed in an iframe from their own origin; Flask sent no X-Frame-Options.
    frameguard: false,
    // Kept from helmet's defaults: X-Content-Type-Options nosniff,
    // Referrer-Policy no-referrer, Cross-Origin-Opener-Policy same-origin, Origin-Agent-Cluster,
    // X-DNS-Prefetch-Control off, X-Download-Options noopen, X-Permitted-Cross-Domain-Policies
    // none, X-XSS-Protection 0, and no X-Powered-By.
  });
}
