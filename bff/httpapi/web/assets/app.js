// The registration page: one POST /api/bff/register/ with an
// Idempotency-Key, the API's field errors next to their fields, and the
// merged profile from GET /api/bff/me/ on success. The tokens live in this
// closure only: never in storage, cookies or the URL.
(function () {
  'use strict';

  var REQUIRED = ['email', 'first_name', 'last_name', 'password1', 'password2',
    'street_address', 'city', 'postal_code'];
  var OPTIONAL = ['phone_number', 'state', 'country'];
  var LABELS = {
    email: 'Email', first_name: 'First name', last_name: 'Last name', phone_number: 'Phone number',
    password1: 'Password', password2: 'Repeated password', street_address: 'Street address',
    city: 'City', state: 'State', postal_code: 'Postal code', country: 'Country'
  };
  var PROFILE_FIELDS = [
    ['street_address', 'Street address'], ['city', 'City'], ['state', 'State'],
    ['postal_code', 'Postal code'], ['country', 'Country'],
    ['preferred_contact_method', 'Preferred contact'], ['customer_since', 'Customer since'],
    ['is_verified', 'Verified']
  ];
  var CACHE = {
    HIT: 'Served from the cache (X-Cache: HIT).',
    MISS: 'Served by the services and now cached (X-Cache: MISS).',
    BYPASS: 'Served by the services; the cache was bypassed (X-Cache: BYPASS).'
  };

  var form = document.getElementById('register');
  var button = document.getElementById('submit');
  var progress = document.getElementById('progress');
  var status = document.getElementById('form-status');
  var registration = document.getElementById('registration');
  var profile = document.getElementById('profile');

  var tokens = null; // {access, refresh}: memory only
  var busy = false;
  // The key of the last attempt is reused only for a retry of the same body
  // that got no answer (or "still running"): any answer is stored by the BFF
  // under its key and would be replayed.
  var last = { body: null, key: null, reusable: false };

  function newKey() {
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  function input(name) { return form.elements.namedItem(name); }

  function body() {
    var out = {};
    REQUIRED.forEach(function (n) { out[n] = input(n).value; });
    OPTIONAL.forEach(function (n) { var v = input(n).value; if (v.trim() !== '') { out[n] = v; } });
    return out;
  }

  function clearErrors() {
    status.hidden = true;
    status.textContent = '';
    Array.prototype.forEach.call(form.querySelectorAll('.field-error'), function (p) { p.textContent = ''; });
    Array.prototype.forEach.call(form.querySelectorAll('[aria-invalid]'), function (el) { el.removeAttribute('aria-invalid'); });
  }

  function setBusy(on, message) {
    busy = on;
    button.disabled = on;
    if (on) { form.setAttribute('aria-busy', 'true'); } else { form.removeAttribute('aria-busy'); }
    progress.textContent = message || '';
  }

  // showStatus fills the alert above the form: a message and, for field
  // errors, a list linking to each field in error. It is announced.
  function showStatus(message, items) {
    status.textContent = '';
    var p = document.createElement('p');
    p.textContent = message;
    status.appendChild(p);
    if (items && items.length) {
      var ul = document.createElement('ul');
      items.forEach(function (it) {
        var li = document.createElement('li');
        if (it.field) {
          var a = document.createElement('a');
          a.href = '#f-' + it.field;
          a.textContent = it.text;
          li.appendChild(a);
        } else {
          li.textContent = it.text;
        }
        ul.appendChild(li);
      });
      status.appendChild(ul);
    }
    status.hidden = false;
  }

  // showFieldErrors puts each field's messages, exactly as the API sent
  // them, next to its input; messages of members the form has no input for
  // go to the alert. It returns the alert's items.
  function showFieldErrors(fields) {
    var items = [];
    Object.keys(fields).forEach(function (name) {
      var msgs = fields[name];
      if (!Array.isArray(msgs)) { msgs = [String(msgs)]; }
      var text = msgs.join(' ');
      var slot = document.getElementById(name + '-error');
      var el = LABELS[name] ? input(name) : null;
      if (slot && el) {
        slot.textContent = text;
        el.setAttribute('aria-invalid', 'true');
        items.push({ field: name, text: LABELS[name] + ': ' + text });
      } else {
        items.push({ text: (name === 'non_field_errors' ? '' : name + ': ') + text });
      }
    });
    return items;
  }

  function isFieldErrors(obj) {
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) { return false; }
    var keys = Object.keys(obj);
    return keys.length > 0 && keys.every(function (k) { return Array.isArray(obj[k]); });
  }

  function focusFirstInvalid() {
    var el = form.querySelector('[aria-invalid="true"]');
    if (el) { el.focus(); } else { status.focus(); }
  }

  function showFailure(resp, data) {
    if (isFieldErrors(data)) {
      var items = showFieldErrors(data);
      showStatus(items.length === 1 ? 'Please correct 1 field.' : 'Please correct ' + items.length + ' fields.', items);
      focusFirstInvalid();
      return;
    }
    var detail = data && typeof data.detail === 'string' ? data.detail : 'The registration failed (HTTP ' + resp.status + '). Please try again.';
    var more = data && isFieldErrors(data.errors) ? showFieldErrors(data.errors) : [];
    if (resp.status === 429 || resp.status === 409) {
      var wait = resp.headers.get('Retry-After');
      if (wait) { detail += ' You can try again in ' + wait + ' seconds.'; }
    }
    showStatus(detail, more);
    if (more.length) { focusFirstInvalid(); } else { status.focus(); }
  }

  function readJSON(resp) {
    return resp.text().then(function (t) {
      if (!t) { return null; }
      try { return JSON.parse(t); } catch (e) { return null; }
    });
  }

  function term(dl, label, value) {
    var dt = document.createElement('dt');
    dt.textContent = label;
    var dd = document.createElement('dd');
    dd.textContent = value === null || value === undefined || value === '' ? '—' : String(value);
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  function showProfile(view, cache) {
    var user = view.user || {};
    var customer = view.profile;
    document.getElementById('profile-title').textContent = 'Welcome, ' + (user.first_name || user.email || '');
    document.getElementById('profile-status').textContent = 'Your account and your customer profile are ready.';
    document.getElementById('cache-status').textContent = CACHE[cache] || ('X-Cache: ' + (cache || 'none') + '.');
    var du = document.getElementById('profile-user');
    var dc = document.getElementById('profile-customer');
    du.textContent = '';
    dc.textContent = '';
    term(du, 'Name', [user.first_name, user.last_name].filter(Boolean).join(' '));
    term(du, 'Email', user.email);
    term(du, 'Phone number', user.phone_number);
    if (customer) {
      PROFILE_FIELDS.forEach(function (f) {
        var v = customer[f[0]];
        if (f[0] === 'is_verified') { v = v ? 'Yes' : 'No'; }
        if (f[0] === 'customer_since' && v) { v = new Date(v).toLocaleDateString(); }
        term(dc, f[1], v);
      });
    } else {
      term(dc, 'Profile', 'Not found');
    }
    registration.hidden = true;
    profile.hidden = false;
    document.getElementById('profile-title').focus();
  }

  function loadProfile() {
    setBusy(true, 'Loading your profile…');
    return fetch('/api/bff/me/', {
      headers: { 'Accept': 'application/json', 'Authorization': 'Bearer ' + tokens.access },
      cache: 'no-store'
    }).then(function (resp) {
      return readJSON(resp).then(function (data) {
        setBusy(false);
        if (!resp.ok || !data) {
          showFailure(resp, data);
          return;
        }
        showProfile(data, resp.headers.get('X-Cache'));
      });
    }).catch(function () {
      setBusy(false);
      showStatus('Your account was created, but your profile could not be loaded. Reload the page and log in.');
      status.focus();
    });
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (busy) { return; }
    clearErrors();
    var payload = JSON.stringify(body());
    var key = last.reusable && last.body === payload ? last.key : newKey();
    last = { body: payload, key: key, reusable: false };
    setBusy(true, 'Creating your account…');
    fetch('/api/bff/register/', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json', 'Idempotency-Key': key },
      body: payload,
      cache: 'no-store'
    }).then(function (resp) {
      last.reusable = resp.status === 409;
      return readJSON(resp).then(function (data) {
        if (resp.status === 201 && data && data.tokens) {
          tokens = { access: data.tokens.access, refresh: data.tokens.refresh };
          form.reset();
          return loadProfile();
        }
        setBusy(false);
        showFailure(resp, data);
      });
    }).catch(function () {
      last.reusable = true;
      setBusy(false);
      showStatus('The service could not be reached. Check your connection and try again: submitting the same details again is safe.');
      status.focus();
    });
  });

  document.getElementById('start-over').addEventListener('click', function () {
    tokens = null;
    last = { body: null, key: null, reusable: false };
    clearErrors();
    profile.hidden = true;
    registration.hidden = false;
    input('email').focus();
  });
}());
