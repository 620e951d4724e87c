package web

import (
	"bytes"
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gofiber/fiber/v2"
	"gopkg.in/yaml.v3"

	"github.com/gridwatch/gridwatch/cloud/cases"
)

// Users maps API tokens to people and their roles.
type Users struct {
	byToken map[string]cases.Actor
	Demo    bool // the built-in demo tokens are in use
}

type usersFile struct {
	Users []struct {
		Token string `yaml:"token"`
		Name  string `yaml:"name"`
		Role  string `yaml:"role"`
		Dept  string `yaml:"dept"`
	} `yaml:"users"`
}

//go:embed demo-tokens.yaml
var demoTokens []byte

// DemoUsers are the demo's well-known tokens (printed by make demo). Never
// use them in production: pass --tokens FILE.
func DemoUsers() *Users {
	u, err := ParseUsers(demoTokens)
	if err != nil {
		panic(err)
	}
	u.Demo = true
	return u
}

// LoadUsers reads a tokens file.
func LoadUsers(path string) (*Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	u, err := ParseUsers(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return u, nil
}

var roles = map[string]bool{cases.Supervisor: true, cases.Verifier: true, cases.Dispatcher: true,
	cases.Department: true, cases.StreetRole: true, cases.Admin: true, cases.Device: true}

// ParseUsers reads a tokens file strictly.
func ParseUsers(b []byte) (*Users, error) {
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	u := &Users{byToken: map[string]cases.Actor{}}
	for i, x := range f.Users {
		switch {
		case len(x.Token) < 8:
			return nil, fmt.Errorf("users[%d].token: at least 8 characters", i)
		case x.Name == "":
			return nil, fmt.Errorf("users[%d].name: required", i)
		case !roles[x.Role]:
			return nil, fmt.Errorf("users[%d].role: %q is not a role", i, x.Role)
		case (x.Role == cases.Department || x.Role == cases.StreetRole) && x.Dept == "":
			return nil, fmt.Errorf("users[%d].dept: required for role %s", i, x.Role)
		}
		if _, dup := u.byToken[x.Token]; dup {
			return nil, fmt.Errorf("users[%d].token: used twice", i)
		}
		u.byToken[x.Token] = cases.Actor{Name: x.Name, Role: x.Role, Dept: x.Dept}
	}
	return u, nil
}

var errNoToken = errors.New("missing or unknown API token: send Authorization: Bearer TOKEN")

// actor identifies the caller from the Authorization header.
func (u *Users) actor(c *fiber.Ctx) (cases.Actor, error) {
	tok, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || tok == "" {
		return cases.Actor{}, errNoToken
	}
	for t, a := range u.byToken {
		if subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
			return a, nil
		}
	}
	return cases.Actor{}, errNoToken
}

// authenticated requires a valid token and stores the actor in Locals.
func (u *Users) authenticated(c *fiber.Ctx) error {
	a, err := u.actor(c)
	if err != nil {
		return fiber.NewError(fiber.StatusUnauthorized, err.Error())
	}
	c.Locals("actor", a)
	return c.Next()
}

func actorOf(c *fiber.Ctx) cases.Actor {
	a, _ := c.Locals("actor").(cases.Actor)
	return a
}
