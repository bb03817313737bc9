<?xml version="1.0" encoding="UTF-8"?>
<!--
  OAI-PMH answers as a page a person can read: every answer of Kiel's
  provider names this stylesheet (<?xml-stylesheet?>), and the provider
  serves it at any path ending in /kiel-oai.xsl. Harvesters ignore it.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:oai="http://www.openarchives.org/OAI/2.0/"
    exclude-result-prefixes="oai">

  <xsl:output method="html" encoding="UTF-8"/>

  <xsl:variable name="base" select="/oai:OAI-PMH/oai:request"/>

  <xsl:template match="/">
    <html>
      <head>
        <title>OAI-PMH: <xsl:value-of select="oai:OAI-PMH/oai:request/@verb"/></title>
        <style>
          body { font-family: sans-serif; margin: 2em; max-width: 60em; }
          table { border-collapse: collapse; }
          td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
          .deleted { color: #999; text-decoration: line-through; }
          nav a { margin-right: 1em; }
        </style>
      </head>
      <body>
        <nav>
          <a href="?verb=Identify">Identify</a>
          <a href="?verb=ListSets">ListSets</a>
          <a href="?verb=ListMetadataFormats">ListMetadataFormats</a>
          <a href="?verb=ListIdentifiers&amp;metadataPrefix=oai_dc">ListIdentifiers</a>
          <a href="?verb=ListRecords&amp;metadataPrefix=oai_dc">ListRecords</a>
        </nav>
        <h1><xsl:value-of select="oai:OAI-PMH/oai:request/@verb"/></h1>
        <p>Answered <xsl:value-of select="oai:OAI-PMH/oai:responseDate"/> by
          <xsl:value-of select="$base"/></p>
        <xsl:apply-templates select="oai:OAI-PMH/*[not(self::oai:responseDate or self::oai:request)]"/>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="oai:error">
    <p><strong>Error <xsl:value-of select="@code"/>:</strong> <xsl:value-of select="."/></p>
  </xsl:template>

  <xsl:template match="oai:Identify">
    <table>
      <xsl:for-each select="*[not(self::oai:description)]">
        <tr><th><xsl:value-of select="local-name()"/></th><td><xsl:value-of select="."/></td></tr>
      </xsl:for-each>
    </table>
  </xsl:template>

  <xsl:template match="oai:ListSets">
    <table>
      <tr><th>setSpec</th><th>name</th></tr>
      <xsl:for-each select="oai:set">
        <tr>
          <td><a href="?verb=ListIdentifiers&amp;metadataPrefix=oai_dc&amp;set={oai:setSpec}">
            <xsl:value-of select="oai:setSpec"/></a></td>
          <td><xsl:value-of select="oai:setName"/></td>
        </tr>
      </xsl:for-each>
    </table>
    <xsl:apply-templates select="oai:resumptionToken"/>
  </xsl:template>

  <xsl:template match="oai:ListMetadataFormats">
    <table>
      <tr><th>prefix</th><th>schema</th><th>namespace</th></tr>
      <xsl:for-each select="oai:metadataFormat">
        <tr><td><xsl:value-of select="oai:metadataPrefix"/></td>
          <td><xsl:value-of select="oai:schema"/></td>
          <td><xsl:value-of select="oai:metadataNamespace"/></td></tr>
      </xsl:for-each>
    </table>
  </xsl:template>

  <xsl:template match="oai:ListIdentifiers | oai:ListRecords | oai:GetRecord">
    <table>
      <tr><th>identifier</th><th>datestamp</th><th>sets</th><th>metadata</th></tr>
      <xsl:for-each select=".//oai:header">
        <tr>
          <xsl:if test="@status = 'deleted'"><xsl:attribute name="class">deleted</xsl:attribute></xsl:if>
          <td><a href="?verb=GetRecord&amp;metadataPrefix=oai_dc&amp;identifier={oai:identifier}">
            <xsl:value-of select="oai:identifier"/></a></td>
          <td><xsl:value-of select="oai:datestamp"/></td>
          <td><xsl:for-each select="oai:setSpec"><xsl:value-of select="."/><br/></xsl:for-each></td>
          <td><xsl:for-each select="../oai:metadata//*[not(*)]">
            <xsl:value-of select="local-name()"/>: <xsl:value-of select="."/><br/>
          </xsl:for-each></td>
        </tr>
      </xsl:for-each>
    </table>
    <xsl:apply-templates select="oai:resumptionToken"/>
  </xsl:template>

  <xsl:template match="oai:resumptionToken">
    <p>
      <xsl:value-of select="@cursor"/> before this page, <xsl:value-of select="@completeListSize"/> in all.
      <xsl:if test="string(.) != ''">
        <a href="?verb={/oai:OAI-PMH/oai:request/@verb}&amp;resumptionToken={.}">next page</a>
      </xsl:if>
    </p>
  </xsl:template>

</xsl:stylesheet>
