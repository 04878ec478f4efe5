#!/usr/bin/python3
"""The management page in headless Chromium, driven by chromedriver
(tests/web/web.sh sets up the daemon, the NSS databases and the policy).

Prints one line per check: R<TAB>0|1<TAB>name<TAB>detail; web.sh turns them
into TAP. Exits 77 when Chromium cannot start.
"""
import argparse
import os
import subprocess
import sys
import time

try:
    from selenium import webdriver
    from selenium.common.exceptions import (StaleElementReferenceException, TimeoutException,
                                            WebDriverException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    print('SKIP python3-selenium is not installed')
    sys.exit(77)


def result(ok, name, detail=''):
    print('R\t%d\t%s\t%s' % (0 if ok else 1, name, str(detail).replace('\n', ' | ')),
          flush=True)


def browser(home):
    opts = webdriver.ChromeOptions()
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
              '--disable-dev-shm-usage', '--window-size=1280,900',
              # Nothing but the gateway: no proxy lookup, no update or
              # sync traffic to time out in a namespace without a way out.
              '--no-proxy-server', '--disable-background-networking',
              '--disable-component-update', '--disable-sync',
              '--user-data-dir=' + os.path.join(home, 'profile')):
        opts.add_argument(a)
    env = dict(os.environ, HOME=home)
    svc = Service('/usr/bin/chromedriver', env=env)
    return webdriver.Chrome(service=svc, options=opts)


STALE = (StaleElementReferenceException,)


def row_keys(d, selector, key):
    """The data-KEY of every row matching selector, read in one script: the
    page re-renders its lists on refresh, so elements found one call earlier
    may be gone (stale) by the next."""
    return d.execute_script(
        'var key = arguments[1];'
        'return Array.from(document.querySelectorAll(arguments[0]))'
        '.map(function (r) { return r.dataset[key]; });', selector, key)


def retry_stale(fn, tries=5):
    """fn(), again when the element it held was re-rendered meanwhile."""
    for i in range(tries):
        try:
            return fn()
        except StaleElementReferenceException:
            if i == tries - 1:
                raise
            time.sleep(0.2)


def wait_loaded(d, view, timeout=15):
    WebDriverWait(d, timeout, ignored_exceptions=STALE).until(
        lambda x: x.execute_script('return document.body && document.body.dataset.loaded')
        == view)


def shot(d, screens, name):
    path = os.path.join(screens, name + '.png')
    d.save_screenshot(path)
    return path


def visible_buttons(d):
    return [b for b in d.find_elements(By.CSS_SELECTOR, 'button') if b.is_displayed()]


def admin_pages(d, a):
    d.get(a.url + '/')
    wait_loaded(d, 'overview')
    who = d.find_element(By.ID, 'who').text
    result('webadmin (admin)' in who, 'the admin page loads with the certificate and names it',
           'who: %r' % who)
    ca = d.find_element(By.ID, 'ov-ca')
    result(ca.text.isdigit() and 'ok' in ca.get_attribute('class'),
           'overview shows the CA days left, colored', 'CA: %r class %r'
           % (ca.text, ca.get_attribute('class')))
    legend = d.find_element(By.ID, 'ov-legend').text
    bars = d.find_elements(By.CSS_SELECTOR, '#refusals-chart rect[data-reason=no-certificate]')
    result('no-certificate' in legend and len(bars) > 0,
           'overview charts the refusals by reason (the certificate-less curl counted)',
           'legend %r, %d no-certificate bars' % (legend, len(bars)))
    shot(d, a.screens, 'overview')

    d.get(a.url + '/#peers')
    wait_loaded(d, 'peers')
    names = row_keys(d, '#peer-rows tr', 'peer')
    result(a.victim in names and 'admin1' in names, 'the peers view lists the peers',
           'rows: %s' % names)
    buttons = d.find_elements(By.CSS_SELECTOR, '#peer-rows button[data-action=revoke]')
    result(len(buttons) > 0, 'an admin sees revoke buttons', '%d buttons' % len(buttons))
    shot(d, a.screens, 'peers')
    search = d.find_element(By.ID, 'peer-search')
    search.send_keys('vic')
    names = row_keys(d, '#peer-rows tr', 'peer')
    result(names and all(n.startswith('vic') for n in names), 'search filters the peers',
           'rows after "vic": %s' % names)
    search.clear()
    d.execute_script('document.getElementById("peer-search").dispatchEvent(new Event("input"))')
    d.find_element(By.CSS_SELECTOR, '#peer-rows tr[data-peer=admin1]').click()
    WebDriverWait(d, 10, ignored_exceptions=STALE).until(
        lambda x: x.find_element(By.ID, 'peer-detail').is_displayed())
    detail = d.find_element(By.ID, 'peer-detail').text
    result('serial' in detail and 'not after' in detail, 'a peer shows its certificate details',
           detail[:200])
    shot(d, a.screens, 'peer-detail')

    d.get(a.url + '/#sessions')
    wait_loaded(d, 'sessions')
    peers = [r.find_element(By.TAG_NAME, 'td').text for r in
             d.find_elements(By.CSS_SELECTOR, '#session-rows tr')]
    result(a.victim in peers, 'the sessions view lists the live sessions', 'peers: %s' % peers)
    first = d.find_element(By.ID, 'sessions-stamp').text
    try:
        WebDriverWait(d, 8, ignored_exceptions=STALE).until(
            lambda x: x.find_element(By.ID, 'sessions-stamp').text != first)
        result(True, 'the sessions view refreshes by itself')
    except TimeoutException:
        result(False, 'the sessions view refreshes by itself', 'stamp stayed %r' % first)
    shot(d, a.screens, 'sessions')

    d.get(a.url + '/#bans')
    wait_loaded(d, 'bans')
    shot(d, a.screens, 'bans')


def set_value(d, elem_id, value):
    e = d.find_element(By.ID, elem_id)
    if e.tag_name == 'select':
        Select(e).select_by_visible_text(value)
        return
    e.clear()
    e.send_keys(value)


def decode_qr(png):
    """The QR code in a PNG, decoded by zbarimg (None when it is missing)."""
    try:
        out = subprocess.run(['zbarimg', '-q', '--raw', png], capture_output=True, timeout=20)
    except FileNotFoundError:
        return None
    return out.stdout.decode('utf-8', 'replace').strip()


def admin_invites(d, a):
    d.get(a.url + '/#invites')
    wait_loaded(d, 'invites')
    set_value(d, 'invite-name', 'phone2')
    set_value(d, 'invite-role', 'monitor')
    set_value(d, 'invite-ttl', '2h')
    d.find_element(By.ID, 'invite-submit').click()
    WebDriverWait(d, 10, ignored_exceptions=STALE).until(lambda x: x.find_element(By.ID, 'invite-join').text
                               or x.find_element(By.ID, 'invite-error').text)
    join = d.find_element(By.ID, 'invite-join').text
    code = d.find_element(By.ID, 'invite-code').text
    result(join.startswith('mtlsgw join https://') and ('--name phone2 --code ' + code) in join
           and '--fingerprint ' in join, 'an invite made in the page shows its code and the '
           'join line', 'join %r, error %r' % (join, d.find_element(By.ID, 'invite-error').text))
    png = os.path.join(a.screens, 'invite-qr.png')

    def qr_shot():
        qr = d.find_element(By.ID, 'invite-qr-svg')
        # All of it in the viewport: an element screenshot is cut at its edge.
        d.execute_script('arguments[0].scrollIntoView({block: "center"})', qr)
        qr.screenshot(png)
    retry_stale(qr_shot)
    got = decode_qr(png)
    if got is None:
        print('# zbarimg missing: the QR code is not decoded', flush=True)
    else:
        result(got == join, "the invite's QR code in the page (SVG) decodes to the join line",
               'decoded %r' % got)
    rows = row_keys(d, '#invite-rows tr', 'invite')
    result('phone2' in rows, 'the invite is listed', 'rows %s' % rows)
    shot(d, a.screens, 'invites')
    # A wrong one: the API's words on the page.
    set_value(d, 'invite-name', 'bad/name')
    d.find_element(By.ID, 'invite-submit').click()
    WebDriverWait(d, 10, ignored_exceptions=STALE).until(lambda x: x.find_element(By.ID, 'invite-error').text)
    said = d.find_element(By.ID, 'invite-error').text
    result('must be a peer name' in said, 'a refused invite shows the API error', said)
    # Withdraw it.
    d.find_element(By.CSS_SELECTOR,
                   '#invite-rows tr[data-invite=phone2] button[data-action=withdraw]').click()
    alert = WebDriverWait(d, 5, ignored_exceptions=STALE).until(lambda x: x.switch_to.alert)
    asked = alert.text
    alert.accept()
    try:
        WebDriverWait(d, 10, ignored_exceptions=STALE).until(
            lambda x: 'Withdrew the invite for phone2' in x.find_element(By.ID, 'message').text)
        rows = row_keys(d, '#invite-rows tr', 'invite')
        result('phone2' in asked and 'phone2' not in rows,
               'withdrawing the invite, after a confirmation naming it', 'asked %r rows %s'
               % (asked, rows))
    except TimeoutException:
        result(False, 'withdrawing the invite', d.find_element(By.ID, 'message').text)


def admin_enrolls(d, a):
    d.get(a.url + '/#peers')
    wait_loaded(d, 'peers')
    set_value(d, 'enroll-name', 'csrpeer')
    set_value(d, 'enroll-role', 'monitor')
    d.find_element(By.ID, 'enroll-csr').send_keys(a.csr)
    d.find_element(By.ID, 'enroll-submit').click()
    WebDriverWait(d, 15, ignored_exceptions=STALE).until(lambda x: x.find_element(By.ID, 'enroll-summary').text
                               or x.find_element(By.ID, 'enroll-error').text)
    said = d.find_element(By.ID, 'enroll-summary').text
    pem = d.find_element(By.ID, 'enroll-cert').text
    result('Enrolled csrpeer as monitor' in said and 'BEGIN CERTIFICATE' in pem,
           'enrolling from an uploaded CSR gives the certificate',
           '%r %r' % (said, d.find_element(By.ID, 'enroll-error').text))
    d.execute_script('arguments[0].scrollIntoView({block: "center"})',
                     d.find_element(By.ID, 'enroll-summary'))
    shot(d, a.screens, 'enrolled')
    d.get(a.url + '/#audit')
    wait_loaded(d, 'audit')
    rows = d.find_elements(By.CSS_SELECTOR, '#audit-rows tr')
    first = rows[0].text if rows else ''
    result(len(rows) > 3 and 'enroll' in first and 'csrpeer' in first,
           'the audit log lists the enrollment first (newest first)',
           '%d rows, first %r' % (len(rows), first))
    shot(d, a.screens, 'audit')


def admin_kicks(d, a):
    d.get(a.url + '/#sessions')
    wait_loaded(d, 'sessions')
    # The view redraws itself every 3 s: find and click in one script.
    found = d.execute_script('''
        for (const tr of document.querySelectorAll('#session-rows tr')) {
          if (tr.firstChild.textContent === arguments[0]) {
            setTimeout(() => tr.querySelector('button[data-action=kick]').click(), 0);
            return true;
          }
        }
        return false;''', a.kick)
    if not found:
        result(False, 'kicking a session from the page', 'no session of %s listed' % a.kick)
        return
    alert = WebDriverWait(d, 5, ignored_exceptions=STALE).until(lambda x: x.switch_to.alert)
    asked = alert.text
    alert.accept()
    try:
        WebDriverWait(d, 10, ignored_exceptions=STALE).until(
            lambda x: 'Closed session' in x.find_element(By.ID, 'message').text)
        result(a.kick in asked, 'kicking a session from the page, after a confirmation '
               'naming it', 'asked %r' % asked)
    except TimeoutException:
        result(False, 'kicking a session from the page',
               d.find_element(By.ID, 'message').text)
    shot(d, a.screens, 'kicked')


def admin_revokes(d, a):
    d.get(a.url + '/#peers')
    wait_loaded(d, 'peers')
    d.find_element(By.CSS_SELECTOR,
                   '#peer-rows tr[data-peer="%s"] button[data-action=revoke]' % a.victim).click()
    title = d.find_element(By.ID, 'revoke-title').text
    confirm = d.find_element(By.ID, 'revoke-confirm')
    result(a.victim in title and a.victim in confirm.text,
           'the revoke confirmation names the peer', 'title %r, button %r'
           % (title, confirm.text))
    d.find_element(By.CSS_SELECTOR, '#revoke-reason option[value=keyCompromise]').click()
    shot(d, a.screens, 'revoke-confirm')
    t0 = time.monotonic()
    confirm.click()
    try:
        WebDriverWait(d, 15, ignored_exceptions=STALE).until(
            lambda x: ('Revoked ' + a.victim) in x.find_element(By.ID, 'message').text)
        ms = (time.monotonic() - t0) * 1000
        result(True, 'revoking from the page says so (%.0f ms click to answer)' % ms)
        print('# click to revoked answer: %.0f ms' % ms, flush=True)
    except TimeoutException:
        result(False, 'revoking from the page says so',
               d.find_element(By.ID, 'revoke-error').text)
    shot(d, a.screens, 'revoked')


def kernel_left(a):
    """What of the victim's tunnel the hub's kernel still holds."""
    left = []
    links = subprocess.run(['ip', '-n', a.hub_ns, '-o', 'link', 'show', 'dev', a.iface],
                           capture_output=True)
    if links.returncode == 0:
        left.append('interface ' + a.iface)
    route = subprocess.run(['ip', '-n', a.hub_ns, 'route', 'show', a.route],
                           capture_output=True).stdout.decode().strip()
    if route:
        left.append('route ' + route)
    for s in ('trusted_ifaces', 'allowed4'):
        out = subprocess.run(['ip', 'netns', 'exec', a.hub_ns, 'nft', 'list', 'set', 'inet',
                              'mtlsgw', s], capture_output=True).stdout.decode()
        if a.iface in out:
            left.append('nft set ' + s)
    return left


def admin_revokes_kernel(d, a):
    before = kernel_left(a)
    result(len(before) == 4, 'before the click the hub holds the tunnel (interface, route, '
           'two nft sets)', before)
    t = time.monotonic()
    d.get(a.url + '/#peers')
    wait_loaded(d, 'peers')
    print('# the page loaded in %.1f s' % (time.monotonic() - t), flush=True)
    row = d.find_element(By.CSS_SELECTOR, '#peer-rows tr[data-peer="%s"]' % a.victim)
    result('online' in row.text, '%s is online in the page before' % a.victim, row.text)
    row.find_element(By.CSS_SELECTOR, 'button[data-action=revoke]').click()
    Select(d.find_element(By.ID, 'revoke-reason')).select_by_visible_text('keyCompromise')
    shot(d, a.screens, 'kernel-revoke-confirm')
    t0 = time.monotonic()
    d.find_element(By.ID, 'revoke-confirm').click()
    left = before
    while left and time.monotonic() - t0 < 10:
        left = kernel_left(a)
        if left:
            time.sleep(0.01)
    ms = (time.monotonic() - t0) * 1000
    result(not left, 'revoked from the page: interface, route and nft elements gone from '
           'the kernel (%.0f ms after the click)' % ms, 'still there after 10 s: %s' % left)
    print('# click to gone in the kernel: %.0f ms' % ms, flush=True)
    t = time.monotonic()
    try:
        WebDriverWait(d, 10, ignored_exceptions=STALE).until(
            lambda x: ('Revoked ' + a.victim) in x.find_element(By.ID, 'message').text)
        result(True, 'the page says %s is revoked' % a.victim)
        print('# the page said revoked %.1f s after the kernel' % (time.monotonic() - t),
              flush=True)
    except TimeoutException:
        result(False, 'the page says %s is revoked' % a.victim,
               d.find_element(By.ID, 'revoke-error').text)
    shot(d, a.screens, 'kernel-revoked')


def cross_site(d, a):
    d.get(a.evil)
    try:
        WebDriverWait(d, 15, ignored_exceptions=STALE).until(lambda x: x.current_url.startswith(a.url))
        body = d.find_element(By.TAG_NAME, 'body').text
    except TimeoutException:
        body = 'still on %s' % d.current_url
    result('cross-site request refused' in body,
           'a cross-site form POST with the admin certificate is refused', body[:300])
    shot(d, a.screens, 'cross-site-refused')


def monitor(d, a):
    d.get(a.url + '/#peers')
    wait_loaded(d, 'peers')
    who = d.find_element(By.ID, 'who').text
    rows = d.find_elements(By.CSS_SELECTOR, '#peer-rows tr')
    btns = visible_buttons(d) + d.find_elements(By.CSS_SELECTOR, 'button[data-action]')
    result('(monitor)' in who and rows and not btns,
           'a monitor sees the peers and no action button',
           'who %r, %d rows, buttons %s' % (who, len(rows), [b.text for b in btns]))
    shot(d, a.screens, 'monitor-peers')
    d.get(a.url + '/#sessions')
    wait_loaded(d, 'sessions')
    btns = d.find_elements(By.CSS_SELECTOR, 'button')
    result(not btns, 'a monitor sees no kick button', '%d buttons' % len(btns))
    shot(d, a.screens, 'monitor-sessions')
    for view in ('overview', 'bans', 'invites', 'audit'):
        d.get(a.url + '/#' + view)
        wait_loaded(d, view)
        btns = d.find_elements(By.CSS_SELECTOR, 'button, input[id^=invite], input[id^=enroll], '
                                                'select[id^=invite], select[id^=enroll]')
        result(not btns, 'a monitor sees no action part in %s' % view,
               '%s' % [b.get_attribute('id') for b in btns])
        shot(d, a.screens, 'monitor-' + view)
    # The API refuses anyway: the same call the admin page makes.
    said = d.execute_async_script('''
        const done = arguments[arguments.length - 1];
        fetch('/api/v1/peers/admin1/revoke', {method: 'POST',
              headers: {'Content-Type': 'application/json'}, body: '{}'})
          .then(r => r.text().then(t => done(r.status + ' ' + t)))
          .catch(e => done('error ' + e));''')
    result(said.startswith('403') and 'may only read' in said,
           "a monitor's own revoke call is refused by the API", said)


def no_certificate(d, a):
    try:
        d.get(a.url + '/')
    except WebDriverException:
        pass
    time.sleep(1)
    has_page = d.execute_script('return !!document.getElementById("nav-peers")')
    result(not has_page, 'without a client certificate there is no page',
           d.find_element(By.TAG_NAME, 'body').text[:200])
    shot(d, a.screens, 'no-certificate')


def main():
    p = argparse.ArgumentParser()
    for o in ('url', 'screens', 'victim', 'home_admin'):
        p.add_argument('--' + o.replace('_', '-'), required=True)
    # pages and revoke: the daemon on loopback; kernel: the hub in a netns.
    for o in ('evil', 'kick', 'home_monitor', 'home_none', 'csr', 'hub_ns', 'iface', 'route'):
        p.add_argument('--' + o.replace('_', '-'))
    p.add_argument('--stage', choices=('pages', 'revoke', 'all', 'kernel'), required=True)
    a = p.parse_args()
    os.makedirs(a.screens, exist_ok=True)
    stages = {
        'pages': [(a.home_admin, [admin_pages, admin_invites, admin_enrolls, cross_site]),
                  (a.home_monitor, [monitor]),
                  (a.home_none, [no_certificate])],
        'revoke': [(a.home_admin, [admin_kicks, admin_revokes])],
        'all': [(a.home_admin, [admin_pages, admin_invites, admin_enrolls, cross_site,
                                admin_kicks, admin_revokes]),
                (a.home_monitor, [monitor]), (a.home_none, [no_certificate])],
        'kernel': [(a.home_admin, [admin_revokes_kernel])],
    }
    first = True
    t0 = time.monotonic()
    for home, fns in stages[a.stage]:
        try:
            t = time.monotonic()
            d = browser(home)
            print('# Chromium (HOME %s) started in %.1f s' % (os.path.basename(home),
                                                             time.monotonic() - t), flush=True)
        except WebDriverException as e:
            why = str(e).splitlines()[0] if str(e) else repr(e)
            if first:
                print('SKIP Chromium does not start: %s' % why)
                sys.exit(77)
            result(False, 'Chromium starts again (HOME %s)' % home, why)
            continue
        first = False
        try:
            for fn in fns:
                try:
                    t = time.monotonic()
                    fn(d, a)
                    print('# %s: %.1f s' % (fn.__name__, time.monotonic() - t), flush=True)
                except (WebDriverException, TimeoutException) as e:
                    result(False, fn.__name__ + ' ran to its end',
                           str(e).splitlines()[0] if str(e) else repr(e))
        finally:
            d.quit()


if __name__ == '__main__':
    main()
