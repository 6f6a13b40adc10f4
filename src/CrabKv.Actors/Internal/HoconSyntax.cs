namespace CrabKv.Actors.Internal;

/// <summary>
/// Internal. A structural check of HOCON text, run before Akka's parser: that parser accepts
/// much that is not HOCON without a word (<c>b = </c> with no value, <c>b == 2</c>, an
/// unclosed <c>{</c> or string), gives no line numbers, and never returns on an unclosed
/// <c>[</c>. This finds the first such error and its line. It is deliberately lenient about
/// what may appear inside unquoted values; it checks the structure: keys, separators,
/// values, strings, braces, brackets, substitutions.
/// </summary>
internal sealed class HoconSyntax
{
    /// <summary>A syntax error: its 1-based line and what is wrong.</summary>
    public sealed record Error(int Line, string Message);

    private sealed class SyntaxException(int position, string message) : Exception(message)
    {
        public int Position { get; } = position;
    }

    private readonly string _text;
    private int _pos;

    private HoconSyntax(string text) => _text = text;

    /// <summary>The first syntax error of <paramref name="text"/>, or null when it is well formed.</summary>
    public static Error? FindError(string text)
    {
        var parser = new HoconSyntax(text);
        try
        {
            parser.Document();
            return null;
        }
        catch (SyntaxException e)
        {
            return new Error(parser.LineOf(e.Position), e.Message);
        }
    }

    private int LineOf(int position)
    {
        var line = 1;
        for (var i = 0; i < position && i < _text.Length; i++)
        {
            if (_text[i] == '\n')
            {
                line++;
            }
        }
        return line;
    }

    private bool AtEnd => _pos >= _text.Length;

    private char Peek(int ahead = 0) => _pos + ahead < _text.Length ? _text[_pos + ahead] : '\0';

    private SyntaxException Fail(string message, int? position = null) => new(position ?? _pos, message);

    private void Document()
    {
        SkipBlank(newlines: true, commas: false);
        if (Peek() == '{')
        {
            var open = _pos++;
            ObjectBody(open);
            SkipBlank(newlines: true, commas: false);
            if (!AtEnd)
            {
                throw Fail($"unexpected '{Peek()}' after the closing '}}' of the document");
            }
            return;
        }
        ObjectBody(null);
    }

    /// <summary>Fields up to the '}' closing the '{' at <paramref name="open"/> (null: up to the end of the text).</summary>
    private void ObjectBody(int? open)
    {
        while (true)
        {
            SkipBlank(newlines: true, commas: true);
            if (AtEnd)
            {
                if (open is { } o)
                {
                    throw Fail("'{' is never closed", o);
                }
                return;
            }
            var c = Peek();
            if (c == '}')
            {
                if (open is null)
                {
                    throw Fail("unexpected '}' (no '{' to close)");
                }
                _pos++;
                return;
            }
            if (c == ']')
            {
                throw Fail("unexpected ']' (no '[' to close)");
            }
            if (IsInclude())
            {
                SkipToEndOfLine();
                continue;
            }
            Field();
        }
    }

    private bool IsInclude()
    {
        const string word = "include";
        if (string.CompareOrdinal(_text, _pos, word, 0, word.Length) != 0)
        {
            return false;
        }
        var next = Peek(word.Length);
        return next is ' ' or '\t';
    }

    private void Field()
    {
        var keyStart = _pos;
        var key = Key();
        if (key.Length == 0)
        {
            throw Fail($"expected a key, found '{Describe(Peek())}'");
        }
        SkipBlank(newlines: false, commas: false);
        var c = Peek();
        if (c == '{')
        {
            var open = _pos++;
            ObjectBody(open);
            return;
        }
        if (c is '=' or ':')
        {
            _pos++;
        }
        else if (c == '+' && Peek(1) == '=')
        {
            _pos += 2;
        }
        else
        {
            throw Fail($"expected '=', ':' or '{{' after the key '{key}', found {DescribeAt()}", AtEnd || c is '\n' or '\r' ? keyStart : _pos);
        }
        SkipBlank(newlines: false, commas: false);
        if (Value(inArray: false) == 0)
        {
            throw Fail($"the key '{key}' has no value (found {DescribeAt()})", keyStart);
        }
    }

    /// <summary>A key path: quoted or unquoted segments joined by dots (an unquoted segment may hold spaces).</summary>
    private string Key()
    {
        var sb = new System.Text.StringBuilder();
        while (!AtEnd)
        {
            var c = Peek();
            if (c == '"')
            {
                sb.Append(QuotedString());
                continue;
            }
            if (c is '.' || (!IsKeyTerminator(c) && !IsComment()))
            {
                sb.Append(c);
                _pos++;
                continue;
            }
            break;
        }
        return sb.ToString().Trim();
    }

    private static bool IsKeyTerminator(char c) => c is '=' or ':' or '{' or '}' or '[' or ']' or ',' or '#' or '\n' or '\r' or '+' or '$' or '\\';

    /// <summary>A value (possibly a concatenation of several parts) up to the end of its line, a comma or a closing brace/bracket. Returns the number of parts.</summary>
    private int Value(bool inArray)
    {
        var parts = 0;
        while (true)
        {
            SkipBlank(newlines: false, commas: false);
            if (AtEnd)
            {
                return parts;
            }
            var c = Peek();
            if (c is '\n' or '\r' or ',' or '}' || IsComment() || (inArray && c == ']'))
            {
                return parts;
            }
            if (c == '{')
            {
                var open = _pos++;
                ObjectBody(open);
            }
            else if (c == '[')
            {
                var open = _pos++;
                Array(open);
            }
            else if (c == '"')
            {
                QuotedString();
            }
            else if (c == '$' && Peek(1) == '{')
            {
                Substitution();
            }
            else if (c is '=' or ':' or ']' or '\\' || (c == '+' && Peek(1) == '='))
            {
                throw Fail($"unexpected '{c}' where a value was expected");
            }
            else
            {
                Unquoted();
            }
            parts++;
        }
    }

    private void Array(int open)
    {
        while (true)
        {
            SkipBlank(newlines: true, commas: true);
            if (AtEnd)
            {
                throw Fail("'[' is never closed", open);
            }
            if (Peek() == ']')
            {
                _pos++;
                return;
            }
            if (Peek() == '}')
            {
                throw Fail($"unexpected '}}' inside the array opened on line {LineOf(open)}");
            }
            if (Value(inArray: true) == 0)
            {
                throw Fail($"unexpected {DescribeAt()} inside the array opened on line {LineOf(open)}");
            }
        }
    }

    private void Unquoted()
    {
        var start = _pos;
        while (!AtEnd)
        {
            var c = Peek();
            if (char.IsWhiteSpace(c) || c is '{' or '}' or '[' or ']' or ',' or '"' or '#' || IsComment() || (c == '$' && Peek(1) == '{'))
            {
                break;
            }
            _pos++;
        }
        if (_pos == start)
        {
            throw Fail($"unexpected {DescribeAt()}");
        }
    }

    private string QuotedString()
    {
        var open = _pos;
        if (string.CompareOrdinal(_text, _pos, "\"\"\"", 0, 3) == 0)
        {
            var end = _text.IndexOf("\"\"\"", _pos + 3, StringComparison.Ordinal);
            if (end < 0)
            {
                throw Fail("a \"\"\" string is never closed", open);
            }
            _pos = end + 3;
            while (Peek() == '"')
            {
                _pos++; // """ may end with more quotes
            }
            return _text[(open + 3)..end];
        }
        _pos++;
        var sb = new System.Text.StringBuilder();
        while (true)
        {
            if (AtEnd || Peek() is '\n' or '\r')
            {
                throw Fail("a quoted string is not closed on its line", open);
            }
            var c = _text[_pos++];
            if (c == '"')
            {
                return sb.ToString();
            }
            if (c == '\\')
            {
                if (AtEnd)
                {
                    throw Fail("a quoted string is not closed on its line", open);
                }
                var escaped = _text[_pos++];
                if (escaped is not ('"' or '\\' or '/' or 'b' or 'f' or 'n' or 'r' or 't' or 'u'))
                {
                    throw Fail($"invalid escape '\\{escaped}' in a quoted string (write '\\\\' for a backslash)", _pos - 2);
                }
                sb.Append(escaped);
                continue;
            }
            sb.Append(c);
        }
    }

    private void Substitution()
    {
        var open = _pos;
        _pos += 2;
        while (!AtEnd && Peek() is not ('}' or '\n' or '\r'))
        {
            _pos++;
        }
        if (Peek() != '}')
        {
            throw Fail("a substitution '${' is not closed on its line", open);
        }
        _pos++;
        var inner = _text[(open + 2)..(_pos - 1)].TrimStart('?').Trim();
        if (inner.Length == 0)
        {
            throw Fail("an empty substitution '${}'", open);
        }
    }

    private bool IsComment() => Peek() == '#' || (Peek() == '/' && Peek(1) == '/');

    private void SkipToEndOfLine()
    {
        while (!AtEnd && Peek() != '\n')
        {
            _pos++;
        }
    }

    private void SkipBlank(bool newlines, bool commas)
    {
        while (!AtEnd)
        {
            var c = Peek();
            if (IsComment())
            {
                SkipToEndOfLine();
            }
            else if (c is '\n' or '\r')
            {
                if (!newlines)
                {
                    return;
                }
                _pos++;
            }
            else if (c == ',' && commas)
            {
                _pos++;
            }
            else if (char.IsWhiteSpace(c) || c == '\uFEFF')
            {
                _pos++;
            }
            else
            {
                return;
            }
        }
    }

    private string DescribeAt() => AtEnd ? "the end of the text" : Peek() is '\n' or '\r' ? "the end of the line" : $"'{Peek()}'";

    private static string Describe(char c) => c == '\0' ? "end of text" : c.ToString();
}
