// mtlsgw management page (docs/web.md). Plain DOM: every value from the
// API is put on the page with textContent, never parsed as HTML.
'use strict';

(function () {
  const API = '/api/v1';
  const VIEWS = ['overview', 'peers', 'sessions', 'bans', 'invites', 'audit'];
  const SVGNS = 'http://www.w3.org/2000/svg';
  const AUDIT_LIMIT = 200;
  const state = { role: null, peers: [], sessions: [], timer: null, revoking: null };

  function $(id) { return document.getElementById(id); }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function show(msg, info) {
    const m = $('message');
    m.textContent = msg;
    m.className = info ? 'message info' : 'message';
    m.hidden = !msg;
  }

  // Every call goes to this origin with the client certificate the TLS
  // session already holds; a change is JSON (web.c refuses anything else).
  async function call(method, path, body) {
    const opts = { method: method, credentials: 'same-origin', cache: 'no-store',
                   headers: { 'Accept': 'application/json' } };
    if (method !== 'GET') {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body || {});
    }
    const r = await fetch(API + path, opts);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const why = data && data.error ? data.error : r.status + ' ' + r.statusText;
      throw new Error(method + ' ' + path + ': ' + why);
    }
    return data;
  }

  function days(node, n) {
    node.textContent = n === undefined || n === null ? '-' : String(n);
    node.className = 'big ' + (n === undefined || n === null ? '' : n < 0 ? 'bad' :
                               n < 30 ? 'warn' : 'ok');
  }

  function kvRow(tbody, k, v) {
    const tr = el('tr');
    tr.appendChild(el('th', k));
    tr.appendChild(el('td', v));
    tbody.appendChild(tr);
  }

  function bytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    n = Number(n) || 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }

  function duration(s) {
    s = Number(s) || 0;
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
      m = Math.floor(s % 3600 / 60);
    return d ? d + 'd ' + h + 'h' : h ? h + 'h ' + m + 'm' : m + 'm ' + s % 60 + 's';
  }

  async function loadOverview() {
    const s = await call('GET', '/status');
    const tok = s.token || {};
    $('ov-token').textContent = tok.healthy ? 'healthy' : 'unavailable';
    $('ov-token').className = 'big ' + (tok.healthy ? 'ok' : 'bad');
    $('ov-token-uri').textContent = tok.uri || '';
    const dl = s.days_left || {};
    days($('ov-ca'), dl.ca);
    days($('ov-gw'), dl.gateway);
    days($('ov-crl'), dl.crl);
    const ses = $('ov-sessions');
    clear(ses);
    Object.keys(s.sessions || {}).forEach(function (k) { kvRow(ses, k, s.sessions[k]); });
    const bans = $('ov-bans');
    clear(bans);
    kvRow(bans, 'addresses banned now', (s.bans || {}).banned);
    kvRow(bans, 'connections refused while banned', (s.bans || {}).refused_total);
    $('ov-version').textContent = s.version || '';
    $('ov-uptime').textContent = duration(s.uptime);
    drawRefusals(await call('GET', '/refusals'));
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    return e;
  }

  // Refusals by reason, one stacked bar a minute over the last hour (made
  // here as SVG elements: no library, no inline style).
  const COLORS = ['#b3261e', '#2451a6', '#b35c00', '#6a3d9a', '#1e7b34', '#8c564b',
                  '#e377c2', '#7f7f7f', '#17becf', '#bcbd22', '#393b79', '#000000'];
  function drawRefusals(r) {
    const box = $('ov-chart'), legend = $('ov-legend');
    const reasons = Object.keys(r.reasons || {}).sort();
    const n = r.minutes || 60, W = 600, H = 120, bw = W / n;
    let max = 1;
    clear(box);
    clear(legend);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      reasons.forEach(function (k) { sum += r.reasons[k][i] || 0; });
      max = Math.max(max, sum);
    }
    const chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + (H + 16), width: W,
                               height: H + 16, role: 'img', id: 'refusals-chart' });
    const title = svg('title');
    title.textContent = 'Handshake refusals by reason, a bar a minute, last ' + n + ' minutes (' +
      (r.total || 0) + ' in all)';
    chart.appendChild(title);
    chart.appendChild(svg('line', { x1: 0, y1: H, x2: W, y2: H, stroke: '#999' }));
    for (let i = 0; i < n; i++) {
      let y = H;
      reasons.forEach(function (k, j) {
        const v = r.reasons[k][i] || 0;
        if (!v) return;
        const h = Math.max(1, v / max * (H - 4));
        y -= h;
        const bar = svg('rect', { x: (i * bw + 0.5).toFixed(1), y: y.toFixed(1),
                                  width: (bw - 1).toFixed(1), height: h.toFixed(1),
                                  fill: COLORS[j % COLORS.length], 'data-reason': k });
        const t = svg('title');
        t.textContent = k + ': ' + v + ' (' + (n - i - 1) + ' min ago)';
        bar.appendChild(t);
        chart.appendChild(bar);
      });
    }
    [['-' + n + ' min', 0, 'start'], ['max ' + max, W / 2, 'middle'], ['now', W, 'end']]
      .forEach(function (l) {
        const t = svg('text', { x: l[1], y: H + 13, 'font-size': 11, fill: '#5b6473',
                                'text-anchor': l[2] });
        t.textContent = l[0];
        chart.appendChild(t);
      });
    box.appendChild(chart);
    if (!reasons.length) legend.appendChild(el('li', 'no refusal in the last hour'));
    reasons.forEach(function (k, j) {
      const li = el('li');
      const sw = svg('svg', { width: 10, height: 10 });
      sw.appendChild(svg('rect', { width: 10, height: 10, fill: COLORS[j % COLORS.length] }));
      li.appendChild(sw);
      li.appendChild(document.createTextNode(' ' + k + ': ' +
        r.reasons[k].reduce(function (a, b) { return a + b; }, 0)));
      legend.appendChild(li);
    });
  }

  function peerMatches(p) {
    const q = $('peer-search').value.trim().toLowerCase();
    const role = $('peer-role').value, st = $('peer-status').value;
    if (role && p.role !== role) return false;
    if (st === 'online' ? !p.online : st && p.status !== st) return false;
    if (!q) return true;
    return [p.name, p.serial, p.role, p.status].concat(p.networks || [])
      .some(function (v) { return String(v || '').toLowerCase().indexOf(q) >= 0; });
  }

  function renderPeers() {
    const tbody = $('peer-rows');
    clear(tbody);
    state.peers.filter(peerMatches).forEach(function (p) {
      const tr = el('tr', null, 'clickable');
      tr.dataset.peer = p.name;
      tr.appendChild(el('td', p.name));
      tr.appendChild(el('td', p.role));
      tr.appendChild(el('td', p.status, p.status === 'revoked' ? 'bad' : ''));
      tr.appendChild(el('td', p.online ? 'online' : '-', p.online ? 'ok' : ''));
      tr.appendChild(el('td', p.days_left, p.days_left < 30 ? 'warn' : ''));
      tr.appendChild(el('td', (p.networks || []).join(', ')));
      if (state.role === 'admin') {
        const td = el('td');
        if (p.status === 'active') {
          const b = el('button', 'Revoke', 'danger');
          b.type = 'button';
          b.dataset.action = 'revoke';
          b.addEventListener('click', function (ev) { ev.stopPropagation(); askRevoke(p.name); });
          td.appendChild(b);
        }
        tr.appendChild(td);
      }
      tr.addEventListener('click', function () { showPeer(p.name); });
      tbody.appendChild(tr);
    });
  }

  async function loadPeers() {
    state.peers = await call('GET', '/peers');
    renderPeers();
  }

  async function showPeer(name) {
    try {
      const p = await call('GET', '/peers/' + encodeURIComponent(name));
      $('peer-detail-name').textContent = p.name;
      const rows = $('peer-detail-rows');
      clear(rows);
      ['role', 'status', 'serial', 'not_before', 'not_after', 'days_left', 'enrolled_at',
       'revoked_at', 'reason'].forEach(function (k) {
        if (p[k] !== undefined && p[k] !== null) kvRow(rows, k.replace(/_/g, ' '), p[k]);
      });
      kvRow(rows, 'networks', (p.networks || []).join(', ') || '-');
      kvRow(rows, 'online', p.online ? 'yes' : 'no');
      $('peer-detail').hidden = false;
    } catch (e) { show(e.message); }
  }

  function askRevoke(name) {
    state.revoking = name;
    $('revoke-title').textContent = 'Revoke peer ' + name + '?';
    $('revoke-confirm').textContent = 'Revoke ' + name;
    $('revoke-reason').value = 'unspecified';
    $('revoke-error').hidden = true;
    $('revoke-dialog').hidden = false;
    $('revoke-cancel').focus();
  }

  async function doRevoke() {
    const name = state.revoking;
    try {
      const r = await call('POST', '/peers/' + encodeURIComponent(name) + '/revoke',
                           { reason: $('revoke-reason').value });
      $('revoke-dialog').hidden = true;
      show('Revoked ' + r.name + ' (' + r.reason + '); sessions ended: ' + r.sessions_ended, true);
      await loadPeers();
    } catch (e) {
      $('revoke-error').textContent = e.message;
      $('revoke-error').hidden = false;
    }
  }

  async function loadSessions() {
    state.sessions = await call('GET', '/sessions');
    const tbody = $('session-rows');
    clear(tbody);
    state.sessions.forEach(function (s) {
      const tr = el('tr');
      tr.dataset.session = s.id;
      tr.appendChild(el('td', s.peer));
      tr.appendChild(el('td', s.role));
      tr.appendChild(el('td', s.remote));
      tr.appendChild(el('td', s.listener));
      tr.appendChild(el('td', s.interface || '-'));
      tr.appendChild(el('td', bytes(s.bytes_in)));
      tr.appendChild(el('td', bytes(s.bytes_out)));
      tr.appendChild(el('td', s.since));
      if (state.role === 'admin') {
        const td = el('td'), b = el('button', 'Kick');
        b.type = 'button';
        b.dataset.action = 'kick';
        b.addEventListener('click', function () { kick(s); });
        td.appendChild(b);
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    });
    $('sessions-stamp').textContent = 'Last: ' + new Date().toLocaleTimeString();
  }

  async function kick(s) {
    if (!window.confirm('Close session ' + s.id + ' of ' + s.peer + ' from ' + s.remote + '?'))
      return;
    try {
      await call('DELETE', '/sessions/' + encodeURIComponent(s.id));
      show('Closed session ' + s.id + ' of ' + s.peer, true);
      await loadSessions();
    } catch (e) { show(e.message); }
  }

  async function loadBans() {
    const data = await call('GET', '/bans');
    const list = Array.isArray(data) ? data : (data && data.bans) || [];
    const tbody = $('ban-rows');
    clear(tbody);
    list.forEach(function (b) {
      const addr = b.address || b.prefix || '';
      const tr = el('tr');
      tr.appendChild(el('td', addr));
      const rest = Object.keys(b).filter(function (k) { return k !== 'address'; })
        .map(function (k) { return k + ': ' + b[k]; }).join(', ');
      tr.appendChild(el('td', rest));
      if (state.role === 'admin') {
        const td = el('td'), btn = el('button', 'Lift');
        btn.type = 'button';
        btn.dataset.action = 'unban';
        btn.addEventListener('click', async function () {
          try {
            await call('DELETE', '/bans/' + encodeURIComponent(addr));
            show('Lifted the ban of ' + addr, true);
            await loadBans();
          } catch (e) { show(e.message); }
        });
        td.appendChild(btn);
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    });
  }

  function networks(id) {
    return $(id).value.split(/[\s,]+/).filter(function (x) { return x; });
  }

  function fail(id, e) {
    $(id).textContent = e.message;
    $(id).hidden = false;
  }

  // Enroll from a CSR file the admin picked (read here, sent as JSON).
  async function doEnroll() {
    $('enroll-error').hidden = true;
    $('enroll-result').hidden = true;
    try {
      const f = $('enroll-csr').files[0];
      if (!f) throw new Error('choose the CSR file (PEM) first');
      const body = { name: $('enroll-name').value.trim(), role: $('enroll-role').value,
                     csr: await f.text() };
      const nets = networks('enroll-networks');
      if (nets.length) body.networks = nets;
      if ($('enroll-days').value) body.days = Number($('enroll-days').value);
      const r = await call('POST', '/peers', body);
      $('enroll-summary').textContent = 'Enrolled ' + r.name + ' as ' + r.role + ', serial ' +
        r.serial + ', valid until ' + r.not_after + '. Its certificate:';
      $('enroll-cert').textContent = r.certificate;
      $('enroll-result').hidden = false;
      await loadPeers();
    } catch (e) { fail('enroll-error', e); }
  }

  // The QR code comes from the daemon (libqrencode) as an SVG document:
  // parsed as SVG, never as HTML, and only an <svg> root is taken.
  function putQr(box, text) {
    clear(box);
    if (!text) return;
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    const root = doc.documentElement;
    if (!root || root.namespaceURI !== SVGNS || root.localName !== 'svg' ||
        doc.getElementsByTagName('parsererror').length) return;
    root.setAttribute('id', 'invite-qr-svg');
    root.setAttribute('role', 'img');
    root.setAttribute('aria-label', 'QR code of the join line');
    box.appendChild(document.importNode(root, true));
  }

  async function doInvite() {
    $('invite-error').hidden = true;
    $('invite-result').hidden = true;
    try {
      const body = { name: $('invite-name').value.trim(), role: $('invite-role').value,
                     ttl: $('invite-ttl').value.trim() || '24h' };
      const nets = networks('invite-networks');
      if (nets.length) body.networks = nets;
      const r = await call('POST', '/invites', body);
      $('invite-code').textContent = r.code;
      $('invite-expires').textContent = r.expires;
      $('invite-join').textContent = r.join;
      putQr($('invite-qr'), r.qr_svg);
      $('invite-result').hidden = false;
      show('Invited ' + r.name + ' (' + r.role + ')' + (r.note ? '; note: ' + r.note : ''), true);
      await loadInvites(true);
    } catch (e) { fail('invite-error', e); }
  }

  async function loadInvites(keep) {
    const list = await call('GET', '/invites');
    const tbody = $('invite-rows');
    clear(tbody);
    if (!keep && $('invite-result')) $('invite-result').hidden = true;
    list.slice().reverse().forEach(function (inv) {
      const tr = el('tr');
      tr.dataset.invite = inv.name;
      tr.appendChild(el('td', inv.name));
      tr.appendChild(el('td', inv.role));
      tr.appendChild(el('td', inv.state, inv.state === 'pending' ? 'ok' : ''));
      tr.appendChild(el('td', (inv.networks || []).join(', ') || '-'));
      tr.appendChild(el('td', inv.expires));
      tr.appendChild(el('td', inv.used_at ? inv.used_at + ' from ' + (inv.used_by || '?') : '-'));
      if (state.role === 'admin') {
        const td = el('td');
        if (inv.state === 'pending') {
          const b = el('button', 'Withdraw');
          b.type = 'button';
          b.dataset.action = 'withdraw';
          b.addEventListener('click', function () { withdraw(inv.name); });
          td.appendChild(b);
        }
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    });
  }

  async function withdraw(name) {
    if (!window.confirm('Withdraw the invite for ' + name + '? Its code will open nothing.'))
      return;
    try {
      await call('DELETE', '/invites/' + encodeURIComponent(name));
      show('Withdrew the invite for ' + name, true);
      await loadInvites(true);
    } catch (e) { show(e.message); }
  }

  async function loadAudit() {
    const list = await call('GET', '/audit?limit=' + AUDIT_LIMIT);
    const tbody = $('audit-rows');
    $('audit-limit').textContent = String(AUDIT_LIMIT);
    clear(tbody);
    list.forEach(function (a) {
      const tr = el('tr');
      tr.appendChild(el('td', a.time || ''));
      tr.appendChild(el('td', a.event || ''));
      tr.appendChild(el('td', a.name || ''));
      tr.appendChild(el('td', a.actor || ''));
      const rest = Object.keys(a).filter(function (k) {
        return ['time', 'event', 'name', 'actor'].indexOf(k) < 0;
      }).map(function (k) {
        const v = a[k];
        return k + ': ' + (typeof v === 'object' && v !== null ? JSON.stringify(v) : v);
      }).join(', ');
      tr.appendChild(el('td', rest, 'small'));
      tbody.appendChild(tr);
    });
  }

  const loaders = { overview: loadOverview, peers: loadPeers, sessions: loadSessions,
                    bans: loadBans, invites: function () { return loadInvites(false); },
                    audit: loadAudit };

  async function route() {
    let v = location.hash.replace(/^#\/?/, '');
    if (VIEWS.indexOf(v) < 0) v = 'overview';
    VIEWS.forEach(function (name) {
      $('view-' + name).hidden = name !== v;
      $('nav-' + name).className = name === v ? 'current' : '';
    });
    if (state.timer) { clearInterval(state.timer); state.timer = null; }
    try {
      await loaders[v]();
      document.body.dataset.loaded = v;
    } catch (e) { show(e.message); }
    if (v === 'sessions') {
      state.timer = setInterval(function () {
        loadSessions().catch(function (e) { show(e.message); });
      }, 3000);
    }
  }

  async function start() {
    try {
      const me = await call('GET', '/whoami');
      state.role = me.role;
      $('who').textContent = me.peer + ' (' + me.role + ')';
    } catch (e) { show(e.message); }
    if (state.role === 'admin') {
      document.body.classList.add('admin');
      $('revoke-cancel').addEventListener('click', function () {
        $('revoke-dialog').hidden = true;
      });
      $('revoke-confirm').addEventListener('click', doRevoke);
      $('invite-submit').addEventListener('click', doInvite);
      $('enroll-submit').addEventListener('click', doEnroll);
    } else {
      // Read-only: the action parts are not on the page at all.
      const d = $('revoke-dialog');
      d.parentNode.removeChild(d);
      document.querySelectorAll('.admin-only').forEach(function (n) {
        n.parentNode.removeChild(n);
      });
    }
    ['peer-search', 'peer-role', 'peer-status'].forEach(function (id) {
      $(id).addEventListener('input', renderPeers);
    });
    window.addEventListener('hashchange', route);
    route();
  }

  document.addEventListener('DOMContentLoaded', start);
}());
