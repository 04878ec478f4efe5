// mtlsgw management page (docs/web.md). Plain DOM: every value from the
// API is put on the page with textContent, never parsed as HTML.
'use strict';

(function () {
  const API = '/api/v1';
  const VIEWS = ['overview', 'peers', 'sessions', 'bans'];
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
    kvRow(bans, 'handshakes refused (total)', (s.bans || {}).refused_total);
    $('ov-version').textContent = s.version || '';
    $('ov-uptime').textContent = duration(s.uptime);
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

  const loaders = { overview: loadOverview, peers: loadPeers, sessions: loadSessions,
                    bans: loadBans };

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
