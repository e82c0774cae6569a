package main

import (
	"context"
	"errors"
	"io"
)

func cmdLab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
func cmdFlood(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
func cmdAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
func cmdSensor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
func cmdEnricher(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
func cmdAnalyzer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
