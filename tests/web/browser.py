#!/usr/bin/python3
"""The management page in headless Chromium, driven by chromedriver
(tests/web/web.sh sets up the daemon, the NSS databases and the policy).

Prints one line per check: R<TAB>0|1<TAB>name<TAB>detail; web.sh turns them
into TAP. Exits 77 when Chromium cannot start.
"""
import argparse
import os
import sys
import time

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
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
              '--user-data-dir=' + os.path.join(home, 'profile')):
        opts.add_argument(a)
    env = dict(os.environ, HOME=home)
    svc = Service('/usr/bin/chromedriver', env=env)
    return webdriver.Chrome(service=svc, options=opts)


def wait_loaded(d, view, timeout=15):
    WebDriverWait(d, timeout).until(
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
    shot(d, a.screens, 'overview')

    d.get(a.url + '/#peers')
    wait_loaded(d, 'peers')
    names = [r.get_attribute('data-peer') for r in
             d.find_elements(By.CSS_SELECTOR, '#peer-rows tr')]
    result(a.victim in names and 'admin1' in names, 'the peers view lists the peers',
           'rows: %s' % names)
    buttons = d.find_elements(By.CSS_SELECTOR, '#peer-rows button[data-action=revoke]')
    result(len(buttons) > 0, 'an admin sees revoke buttons', '%d buttons' % len(buttons))
    shot(d, a.screens, 'peers')
    search = d.find_element(By.ID, 'peer-search')
    search.send_keys('vic')
    names = [r.get_attribute('data-peer') for r in
             d.find_elements(By.CSS_SELECTOR, '#peer-rows tr')]
    result(names and all(n.startswith('vic') for n in names), 'search filters the peers',
           'rows after "vic": %s' % names)
    search.clear()
    d.execute_script('document.getElementById("peer-search").dispatchEvent(new Event("input"))')
    d.find_element(By.CSS_SELECTOR, '#peer-rows tr[data-peer=admin1]').click()
    WebDriverWait(d, 10).until(lambda x: x.find_element(By.ID, 'peer-detail').is_displayed())
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
        WebDriverWait(d, 8).until(
            lambda x: x.find_element(By.ID, 'sessions-stamp').text != first)
        result(True, 'the sessions view refreshes by itself')
    except TimeoutException:
        result(False, 'the sessions view refreshes by itself', 'stamp stayed %r' % first)
    shot(d, a.screens, 'sessions')

    d.get(a.url + '/#bans')
    wait_loaded(d, 'bans')
    shot(d, a.screens, 'bans')


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
    alert = WebDriverWait(d, 5).until(lambda x: x.switch_to.alert)
    asked = alert.text
    alert.accept()
    try:
        WebDriverWait(d, 10).until(
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
        WebDriverWait(d, 15).until(
            lambda x: ('Revoked ' + a.victim) in x.find_element(By.ID, 'message').text)
        ms = (time.monotonic() - t0) * 1000
        result(True, 'revoking from the page says so (%.0f ms click to answer)' % ms)
        print('# click to revoked answer: %.0f ms' % ms, flush=True)
    except TimeoutException:
        result(False, 'revoking from the page says so',
               d.find_element(By.ID, 'revoke-error').text)
    shot(d, a.screens, 'revoked')


def cross_site(d, a):
    d.get(a.evil)
    try:
        WebDriverWait(d, 15).until(lambda x: x.current_url.startswith(a.url))
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
    for o in ('url', 'evil', 'screens', 'victim', 'kick', 'home_admin', 'home_monitor',
              'home_none'):
        p.add_argument('--' + o.replace('_', '-'), required=True)
    p.add_argument('--stage', choices=('pages', 'revoke'), required=True)
    a = p.parse_args()
    os.makedirs(a.screens, exist_ok=True)
    stages = {
        'pages': [(a.home_admin, [admin_pages, cross_site]), (a.home_monitor, [monitor]),
                  (a.home_none, [no_certificate])],
        'revoke': [(a.home_admin, [admin_kicks, admin_revokes])],
    }
    first = True
    for home, fns in stages[a.stage]:
        try:
            d = browser(home)
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
                    fn(d, a)
                except (WebDriverException, TimeoutException) as e:
                    result(False, fn.__name__ + ' ran to its end',
                           str(e).splitlines()[0] if str(e) else repr(e))
        finally:
            d.quit()


if __name__ == '__main__':
    main()
