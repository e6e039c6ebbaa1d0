package webtest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// person is what a visitor types into the form.
type person struct {
	email, first, last, phone, password, street, city, state, postal string
}

func (p person) body() map[string]string {
	return map[string]string{
		"email": p.email, "first_name": p.first, "last_name": p.last, "phone_number": p.phone,
		"password1": p.password, "password2": p.password,
		"street_address": p.street, "city": p.city, "state": p.state, "postal_code": p.postal, "country": "USA",
	}
}

func ada(email string) person {
	return person{email: email, first: "Ada", last: "Lovelace", phone: "+1 503 555 0100", password: goodPassword,
		street: "123 Main St", city: "Portland", state: "OR", postal: "97201"}
}

// fill types the person's details into the form, as a visitor would.
func (pg *page) fill(t *testing.T, p person) {
	t.Helper()
	for name, v := range map[string]string{
		"email": p.email, "first_name": p.first, "last_name": p.last, "phone_number": p.phone,
		"password1": p.password, "password2": p.password,
		"street_address": p.street, "city": p.city, "state": p.state, "postal_code": p.postal,
	} {
		pg.do(t, chromedp.SendKeys(chromedp.ID("f-"+name), v))
	}
}

// TestRegistrationPage drives the page in Chromium against the real
// services: a registration shows the merged profile, the API's field errors
// appear next to their fields, a double click registers once, and nothing
// is written to the console but what a refused request must write.
func TestRegistrationPage(t *testing.T) {
	t.Parallel()
	chromiumPath := needChromium(t)
	s := startStack(t)
	bctx := startBrowser(t, chromiumPath)

	t.Run("success shows the profile", func(t *testing.T) {
		pg := newPage(t, bctx)
		p := ada("ada.browser@example.com")
		pg.do(t, chromedp.Navigate(s.bff+"/"), chromedp.WaitVisible(chromedp.ID("register")))
		pg.fill(t, p)
		pg.do(t, chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("profile")))

		title := value(t, pg, chromedp.Text(chromedp.ID("profile-title")))
		user := value(t, pg, chromedp.Text(chromedp.ID("profile-user")))
		customer := value(t, pg, chromedp.Text(chromedp.ID("profile-customer")))
		cache := value(t, pg, chromedp.Text(chromedp.ID("cache-status")))
		if !strings.Contains(title, "Ada") || !strings.Contains(user, p.email) || !strings.Contains(user, "Lovelace") ||
			!strings.Contains(customer, "Portland") || !strings.Contains(customer, "97201") || !strings.Contains(customer, "USA") {
			t.Errorf("profile shown: title %q, user %q, customer %q", title, user, customer)
		}
		if !strings.Contains(cache, "X-Cache: MISS") {
			t.Errorf("cache status %q, want the first read to be a MISS", cache)
		}
		if focused := value(t, pg, chromedp.Evaluate[string]("document.activeElement.id")); focused != "profile-title" {
			t.Errorf("focus on %q after success, want the profile's heading", focused)
		}
		if fits := value(t, pg, chromedp.Evaluate[bool]("document.documentElement.scrollWidth <= window.innerWidth")); !fits {
			t.Error("the page is wider than a phone's screen")
		}
		// The tokens are in memory only.
		if stored := value(t, pg, chromedp.Evaluate[string](
			"JSON.stringify([localStorage.length, sessionStorage.length, document.cookie, location.href])")); stored != fmt.Sprintf(`[0,0,"",%q]`, s.bff+"/") {
			t.Errorf("the page stored something: %s", stored)
		}
		png := value(t, pg, chromedp.FullScreenshot(100))
		t.Logf("screenshot of the success state: %s", artifact(t, "registration-success.png", png))

		users := s.users(t, p.email)
		if len(users) != 1 || len(s.profiles(t, users[0]["_id"].(string))) != 1 {
			t.Errorf("after one registration: %d users, want one with one profile", len(users))
		}
		if errs := pg.consoleErrors(t, nil); len(errs) > 0 {
			t.Errorf("console errors: %q", errs)
		}
	})

	t.Run("field errors next to their fields", func(t *testing.T) {
		taken := ada("taken.browser@example.com")
		if status, body := s.register(t, taken.body()); status != 201 {
			t.Fatalf("registering the taken email: %d %v", status, body)
		}
		pg := newPage(t, bctx)
		pg.do(t, chromedp.Navigate(s.bff+"/"), chromedp.WaitVisible(chromedp.ID("register")))

		// A weak password is refused before anything is created; a taken
		// email by the auth service. Each attempt shows exactly what the
		// API answers to the same body (a 400 creates nothing).
		weak := ada(taken.email)
		weak.password = "password"
		pg.fill(t, weak)
		// Submitted from the keyboard: Enter in a field.
		pg.do(t, chromedp.SendKeys(chromedp.ID("f-postal_code"), kb.Enter))
		pg.expectFieldErrors(t, s, weak.body(), "password1")

		for _, name := range []string{"password1", "password2"} {
			pg.do(t, chromedp.Evaluate[chromedp.Void]("document.getElementById('f-"+name+"').value = ''"),
				chromedp.SendKeys(chromedp.ID("f-"+name), goodPassword))
			if v := value(t, pg, chromedp.Value(chromedp.ID("f-"+name))); v != goodPassword {
				t.Fatalf("%s holds %q after retyping", name, v)
			}
		}
		pg.do(t, chromedp.Click(chromedp.ID("submit")))
		pg.expectFieldErrors(t, s, taken.body(), "email")
		t.Logf("screenshot of the field errors: %s", artifact(t, "registration-errors.png", value(t, pg, chromedp.FullScreenshot(100))))

		if n := len(s.users(t, taken.email)); n != 1 {
			t.Errorf("%d users with the taken email, want 1", n)
		}
		// The refused requests are the one error the console may show.
		refused := func(m chromedp.ConsoleMessage) bool {
			return m.Source == "network" && strings.Contains(m.URL, "/api/bff/register/") && strings.Contains(m.Text, "400")
		}
		if errs := pg.consoleErrors(t, refused); len(errs) > 0 {
			t.Errorf("console errors: %q", errs)
		}
	})

	t.Run("a double click registers once", func(t *testing.T) {
		pg := newPage(t, bctx)
		p := ada("double.click@example.com")
		pg.do(t, chromedp.Navigate(s.bff+"/"), chromedp.WaitVisible(chromedp.ID("register")))
		pg.fill(t, p)
		// Count the page's registration calls.
		pg.do(t, chromedp.Evaluate[chromedp.Void](`(() => {
			window.registerCalls = 0;
			const send = window.fetch;
			window.fetch = function (url) {
				if (String(url).includes('/api/bff/register/')) { window.registerCalls++; }
				return send.apply(this, arguments);
			};
		})()`))
		// A real double click: two presses in a row, the second with a
		// click count of 2.
		pg.do(t, chromedp.ScrollIntoView(chromedp.ID("submit")))
		at := value(t, pg, chromedp.Evaluate[[]float64](`(() => {
			const r = document.getElementById('submit').getBoundingClientRect();
			return [r.left + r.width / 2, r.top + r.height / 2];
		})()`))
		pg.do(t, chromedp.MouseClickXY(at[0], at[1]), chromedp.MouseClickXY(at[0], at[1], chromedp.ClickCount(2)))
		busy := value(t, pg, chromedp.Evaluate[bool]("document.getElementById('submit').disabled || !document.getElementById('profile').hidden"))
		pg.do(t, chromedp.WaitVisible(chromedp.ID("profile")))
		if !busy {
			t.Error("the button was not disabled while the registration ran")
		}
		if n := value(t, pg, chromedp.Evaluate[int]("window.registerCalls")); n != 1 {
			t.Errorf("the page sent %d registrations for a double click, want 1", n)
		}
		users := s.users(t, p.email)
		if len(users) != 1 {
			t.Fatalf("%d users after a double click, want 1", len(users))
		}
		if n := len(s.profiles(t, users[0]["_id"].(string))); n != 1 {
			t.Errorf("%d profiles after a double click, want 1", n)
		}
		if errs := pg.consoleErrors(t, nil); len(errs) > 0 {
			t.Errorf("console errors: %q", errs)
		}
	})

	t.Run("the API docs render", func(t *testing.T) {
		pg := newPage(t, bctx)
		pg.do(t, chromedp.Navigate(s.bff+"/docs"), chromedp.WaitVisible(chromedp.CSS(".swagger-ui .info .title")))
		if title := value(t, pg, chromedp.Text(chromedp.CSS(".swagger-ui .info .title"))); !strings.Contains(title, "Customer platform BFF") {
			t.Errorf("docs title %q", title)
		}
		pg.do(t, chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('spec'); s.value = '/assets/openapi/customer.json'; s.dispatchEvent(new Event('change')); })()`))
		deadline := time.Now().Add(10 * time.Second)
		for {
			title := value(t, pg, chromedp.Evaluate[string](`(document.querySelector('.swagger-ui .info .title') || {}).textContent || ''`))
			if strings.Contains(title, "Customer service") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the customer service's document did not render: title %q", title)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("screenshot of the docs: %s", artifact(t, "docs.png", value(t, pg, chromedp.FullScreenshot(100))))
		if errs := pg.consoleErrors(t, nil); len(errs) > 0 {
			t.Errorf("console errors: %q", errs)
		}
	})
}

// expectFieldErrors waits for the answer to a submission of body and checks
// that the page shows, next to each field, exactly the messages the API
// gives to the same body, and only there; fields are those the API must
// name.
func (pg *page) expectFieldErrors(t *testing.T, s *stack, body map[string]string, fields ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for value(t, pg, chromedp.Evaluate[bool]("document.getElementById('submit').disabled || document.getElementById('form-status').hidden")) {
		if time.Now().After(deadline) {
			t.Fatal("no answer shown within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	status, want := s.register(t, body)
	if status != 400 {
		t.Fatalf("the API answers %d %v to the same body, want 400", status, want)
	}
	for _, f := range fields {
		if want[f] == nil {
			t.Fatalf("the API's answer %v does not name %s", want, f)
		}
	}
	for name := range body {
		var parts []string
		if list, ok := want[name].([]any); ok {
			for _, m := range list {
				parts = append(parts, fmt.Sprint(m))
			}
		}
		got := value(t, pg, chromedp.TextContent(chromedp.ID(name+"-error")))
		if got != strings.Join(parts, " ") {
			t.Errorf("%s: the page shows %q next to the field, the API says %q", name, got, parts)
		}
		attrs := value(t, pg, chromedp.Attributes(chromedp.ID("f-"+name)))
		if invalid := attrs["aria-invalid"] == "true"; invalid != (len(parts) > 0) {
			t.Errorf("%s: aria-invalid=%q with API messages %q", name, attrs["aria-invalid"], parts)
		}
		if !strings.Contains(" "+attrs["aria-describedby"]+" ", " "+name+"-error ") {
			t.Errorf("%s: aria-describedby %q does not name %s-error", name, attrs["aria-describedby"], name)
		}
	}
	summary := value(t, pg, chromedp.Text(chromedp.ID("form-status")))
	if want := fmt.Sprintf("Please correct %d field", len(want)); !strings.Contains(summary, want) {
		t.Errorf("the announced summary %q, want %q", summary, want)
	}
	if focused := value(t, pg, chromedp.Evaluate[string]("document.activeElement.id")); focused != "f-"+fields[0] {
		t.Errorf("focus on %q after the errors, want f-%s, the first field in error", focused, fields[0])
	}
}
