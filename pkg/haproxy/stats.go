package haproxy

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Stat is one row of "show stat": field name → value.
type Stat map[string]string

// Command sends one command to HAProxy's stats socket and returns the
// answer.
func Command(socket, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("haproxy stats socket: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	return string(b), err
}

// ShowStat reads "show stat" and returns the rows keyed "backend/server".
func ShowStat(socket string) (map[string]Stat, error) {
	out, err := Command(socket, "show stat")
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("haproxy show stat: %w (%q)", err, out)
	}
	if len(rows) < 1 {
		return nil, fmt.Errorf("haproxy show stat: no header line (%q)", out)
	}
	head := rows[0]
	res := map[string]Stat{}
	for _, row := range rows[1:] {
		s := Stat{}
		for i, v := range row {
			if i < len(head) {
				s[head[i]] = v
			}
		}
		res[s["pxname"]+"/"+s["svname"]] = s
	}
	return res, nil
}
