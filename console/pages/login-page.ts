// The login form; its CSRF token comes from the anonymous session the login page starts.
import { esc } from '../html.ts';

export function loginBody(csrfToken: string, error?: string): string {
  return `${error ? `<p class="error" id="login-error">${esc(error)}</p>` : ''}<form method="post" action="/login" class="login"><input type="hidden" name="_csrf" value="${esc(
    csrfToken,
  )}"><label>User <input name="username" autocomplete="username" required></label><label>Password <input name="password" type="password" autocomplete="current-password" required></label><button type="submit">Log in</button></form>`;
}
